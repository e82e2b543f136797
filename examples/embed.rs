//! Embedding the reconciler in a host platform's actor tree.
//!
//! The host spawns the supervisor linked under its own actor, hands it its own broker and
//! trade source (here the simulated broker stands in for both), subscribes to durable
//! divergence events to forward them, and talks to it with messages.
//!
//! Run: `cargo run --example embed`

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use mt5_reconciler::actors::{
    AccountSpec, ReconcilerEvent, SupervisionConfig, SupervisorArgs, SupervisorMsg, TreeConfig,
};
use mt5_reconciler::broker::Connector;
use mt5_reconciler::broker::sim::{SimBroker, SimConfig};
use mt5_reconciler::domain::ReconcileRules;
use mt5_reconciler::{service, store};
use ractor::{Actor, ActorProcessingErr, ActorRef, OutputPort, RpcReplyPort, SupervisionEvent};

/// The host platform's own actor.
struct Host;

enum HostMsg {
    /// A divergence the reconciler made durable, to forward to the platform's alerting.
    Divergence(ReconcilerEvent),
    /// The reconciler's supervisor, for the platform's other components.
    Reconciler(RpcReplyPort<ActorRef<SupervisorMsg>>),
}

#[cfg(feature = "cluster")]
impl ractor::Message for HostMsg {}

struct HostState {
    reconciler: ActorRef<SupervisorMsg>,
    forwarded: usize,
}

impl Drop for HostState {
    fn drop(&mut self) {
        println!(
            "host forwarded {} events (divergences, breaker transitions, alerts)",
            self.forwarded
        );
    }
}

#[cfg_attr(feature = "async-trait", ractor::async_trait)]
impl Actor for Host {
    type Msg = HostMsg;
    type State = HostState;
    type Arguments = (SupervisorArgs, Arc<OutputPort<ReconcilerEvent>>);

    async fn pre_start(
        &self,
        myself: ActorRef<HostMsg>,
        (args, events): Self::Arguments,
    ) -> Result<HostState, ActorProcessingErr> {
        events.subscribe(myself.clone(), |e| Some(HostMsg::Divergence(e)));
        let (reconciler, _) = service::spawn_linked(args, myself.get_cell()).await?;
        Ok(HostState {
            reconciler,
            forwarded: 0,
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<HostMsg>,
        msg: HostMsg,
        state: &mut HostState,
    ) -> Result<(), ActorProcessingErr> {
        let event = match msg {
            HostMsg::Divergence(event) => event,
            HostMsg::Reconciler(reply) => {
                let _ = reply.send(state.reconciler.clone());
                return Ok(());
            }
        };
        state.forwarded += 1;
        match event {
            ReconcilerEvent::DivergenceOpened {
                account_id,
                divergence,
            } => println!(
                "forwarding: {account_id} {} {} (trade {}, ticket {})",
                divergence.kind,
                divergence.symbol,
                divergence.trade_id.as_deref().unwrap_or("-"),
                divergence.ticket.map_or("-".into(), |t| t.to_string()),
            ),
            ReconcilerEvent::DivergenceResolved {
                account_id,
                fingerprint,
            } => {
                println!("forwarding: {account_id} resolved {fingerprint}")
            }
            ReconcilerEvent::BreakerTransition {
                account_id,
                from,
                to,
                ..
            } => println!("forwarding: {account_id} breaker {from} → {to}"),
            ReconcilerEvent::Alert(alert) => {
                println!("forwarding: {} alert {}", alert.account_id, alert.kind)
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        _myself: ActorRef<HostMsg>,
        event: SupervisionEvent,
        _state: &mut HostState,
    ) -> Result<(), ActorProcessingErr> {
        // The reconciler never escalates an account's failure; if it stops, the host decides.
        if let SupervisionEvent::ActorFailed(_, e) = event {
            eprintln!("reconciler failed: {e}");
        }
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let db = store::connect("sqlite::memory:").await?;
    let sim = Arc::new(SimBroker::new(&SimConfig {
        accounts: 3,
        ..SimConfig::default()
    }));
    let events = Arc::new(OutputPort::default());
    let mut config = TreeConfig::default();
    config.scheduler.interval_ms = 1_000;
    config.supervision = SupervisionConfig::default();
    let args = SupervisorArgs {
        db,
        config,
        rules: Arc::new(ReconcileRules::default()),
        connectors: HashMap::from([(
            "platform".to_owned(),
            Connector {
                broker: sim.clone(),
                trades: sim.clone(),
            },
        )]),
        accounts: vec![AccountSpec {
            id: "sim-001".into(),
            broker: "platform".into(),
        }],
        events: events.clone(),
        follow_accounts_table: false,
        clock: mt5_reconciler::clock::Clock::real(),
    };
    let (host, handle) = Actor::spawn(None, Host, (args, events)).await?;
    // The host adds an account at run time and asks for a sync now.
    let supervisor = ractor::call_t!(host, HostMsg::Reconciler, 1_000)?;
    supervisor.cast(SupervisorMsg::AddAccount(AccountSpec {
        id: "sim-002".into(),
        broker: "platform".into(),
    }))?;
    supervisor.cast(SupervisorMsg::SyncNow("sim-002".into()))?;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let status = service::status(&supervisor).await?;
    for a in &status.accounts {
        println!(
            "{}: {} syncs, {} open divergences, breaker {}",
            a.id, a.syncs_ok, a.open_divergences, a.state
        );
    }
    supervisor.cast(SupervisorMsg::RemoveAccount("sim-002".into()))?;
    host.stop(None);
    handle.await?;
    Ok(())
}
