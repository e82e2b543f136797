//! What `MetaApiBroker` does besides reading snapshots: closing a position, cancelling a
//! pending order (both through `POST …/trade`), and reading one position's deals.

use super::broker::MetaApiBroker;
use super::classify::Subject;
use super::payload;
use crate::broker::BrokerError;
use crate::domain::Deal;

impl MetaApiBroker {
    /// `POST …/trade` with `{"actionType": "POSITION_CLOSE_ID", "positionId": "<ticket>"}`,
    /// under the same cap, timeout and body limit as the reads; the answer is classified by
    /// [`payload::close_result`], HTTP failures like every other request's.
    pub async fn close(&self, account: &str, ticket: u64) -> Result<(), BrokerError> {
        let url = self.http.url(self.metaapi_id(account), &["trade"]);
        let body = serde_json::json!({
            "actionType": "POSITION_CLOSE_ID",
            "positionId": ticket.to_string(),
        });
        let text = self
            .http
            .post_json(url, &body, "trade", Subject::Position)
            .await?;
        payload::close_result(ticket, &text).map_err(|e| self.http.redacted(e))
    }

    /// `POST …/trade` with `{"actionType": "ORDER_CANCEL", "orderId": "<ticket>"}`, like a
    /// close; the answer is classified by [`payload::cancel_result`] (an order that is
    /// already gone is not an error).
    pub async fn cancel(&self, account: &str, ticket: u64) -> Result<(), BrokerError> {
        let url = self.http.url(self.metaapi_id(account), &["trade"]);
        let body = serde_json::json!({
            "actionType": "ORDER_CANCEL",
            "orderId": ticket.to_string(),
        });
        let text = self
            .http
            .post_json(url, &body, "trade", Subject::Order)
            .await?;
        payload::cancel_result(ticket, &text).map_err(|e| self.http.redacted(e))
    }

    /// The deals of position `position_id` on `account`
    /// (`GET …/history-deals/position/{position_id}`), under the same cap, timeout and body
    /// limit as the reads. MetaApi's history has no "still synchronizing" flag: an empty
    /// list may be a history that lags, never proof that no deal exists.
    pub async fn deals_of(
        &self,
        account: &str,
        position_id: u64,
    ) -> Result<Vec<Deal>, BrokerError> {
        let id = position_id.to_string();
        let url = self.http.url(
            self.metaapi_id(account),
            &["history-deals", "position", &id],
        );
        let what = format!("history_deals[{position_id}]");
        let text = self.http.get(url, &what, Subject::Account).await?;
        payload::position_deals(position_id, &text).map_err(|e| self.http.redacted(e))
    }
}
