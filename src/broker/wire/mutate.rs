//! Proptest strategies shared by the payload parsers' properties: valid documents
//! mutated at the byte level and at the JSON level, and arbitrary JSON.

use proptest::prelude::*;
use serde_json::{Value, json};

/// Leaf values that stress a field reader: wrong types, NaN and infinity spelled as
/// strings, huge, tiny, negative and zero numbers, empty and odd strings.
pub fn hostile_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f)
            .map(Value::Number)
            .unwrap_or(Value::Null)),
        prop::sample::select(vec![
            "NaN",
            "nan",
            "Infinity",
            "-Infinity",
            "inf",
            "1e400",
            "-0",
            "0",
            "-1",
            "0.0000000000000000000000000001",
            "79228162514264337593543950336",
            "",
            " ",
            "1,5",
            "0x10",
            "POSITION_TYPE_BUY",
            "POSITION_TYPE_SELL",
            "2020-04-17T04:30:03.223Z",
            "not a time",
        ])
        .prop_map(|s| Value::String(s.to_owned())),
        ".{0,12}".prop_map(Value::String),
        Just(json!([])),
        Just(json!({})),
    ]
}

/// Arbitrary JSON, nested a few levels.
pub fn any_json() -> impl Strategy<Value = Value> {
    hostile_leaf().prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(".{0,10}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// One structural mutation, driven by a few random numbers.
#[derive(Debug, Clone)]
pub enum Edit {
    /// Replace the value at a path with another value.
    Replace(Vec<usize>, Value),
    /// Remove the member or element at a path.
    Remove(Vec<usize>),
    /// Duplicate an array element at a path.
    Duplicate(Vec<usize>),
}

fn edit() -> impl Strategy<Value = Edit> {
    let path = prop::collection::vec(any::<usize>(), 0..4);
    prop_oneof![
        (path.clone(), any_json()).prop_map(|(p, v)| Edit::Replace(p, v)),
        path.clone().prop_map(Edit::Remove),
        path.prop_map(Edit::Duplicate),
    ]
}

fn child(v: &mut Value, i: usize) -> Option<&mut Value> {
    match v {
        Value::Array(a) if !a.is_empty() => {
            let n = a.len();
            a.get_mut(i % n)
        }
        Value::Object(m) if !m.is_empty() => {
            let n = m.len();
            m.values_mut().nth(i % n)
        }
        _ => None,
    }
}

fn apply(doc: &mut Value, edit: &Edit) {
    let (path, last) = match edit {
        Edit::Replace(p, _) | Edit::Remove(p) | Edit::Duplicate(p) => match p.split_last() {
            Some((last, rest)) => (rest, *last),
            None => (&[][..], 0),
        },
    };
    let mut at = doc;
    for &i in path {
        let nested = match &*at {
            Value::Array(a) => !a.is_empty(),
            Value::Object(m) => !m.is_empty(),
            _ => false,
        };
        if !nested {
            break;
        }
        at = child(at, i).expect("a non-empty container has a child");
    }
    match (edit, at) {
        (Edit::Replace(_, v), Value::Array(a)) if !a.is_empty() => {
            let n = a.len();
            a[last % n] = v.clone();
        }
        (Edit::Replace(_, v), Value::Object(m)) if !m.is_empty() => {
            let n = m.len();
            if let Some(slot) = m.values_mut().nth(last % n) {
                *slot = v.clone();
            }
        }
        (Edit::Replace(_, v), slot) => *slot = v.clone(),
        (Edit::Remove(_), Value::Array(a)) if !a.is_empty() => {
            let n = a.len();
            a.remove(last % n);
        }
        (Edit::Remove(_), Value::Object(m)) if !m.is_empty() => {
            let n = m.len();
            if let Some(key) = m.keys().nth(last % n).cloned() {
                m.remove(&key);
            }
        }
        (Edit::Duplicate(_), Value::Array(a)) if !a.is_empty() => {
            let n = a.len();
            let copy = a[last % n].clone();
            a.push(copy);
        }
        _ => {}
    }
}

/// Byte-level damage: cut, insert or overwrite one byte.
fn damage(text: &str, op: u8, at: usize, byte: u8) -> Vec<u8> {
    let mut bytes = text.as_bytes().to_vec();
    let i = if bytes.is_empty() {
        0
    } else {
        at % bytes.len()
    };
    match op % 3 {
        0 => bytes.truncate(i),
        1 => bytes.insert(i, byte),
        _ => {
            if let Some(b) = bytes.get_mut(i) {
                *b = byte;
            }
        }
    }
    bytes
}

/// Texts derived from `seeds`: structurally edited, then possibly byte-damaged, or
/// arbitrary JSON. Not always valid UTF-8 text is lossily converted, as a reader of
/// bytes would see it.
pub fn mutated(seeds: &'static [&'static str]) -> impl Strategy<Value = String> {
    let edited = (
        prop::sample::select(seeds),
        prop::collection::vec(edit(), 0..4),
        prop::option::of((any::<u8>(), any::<usize>(), any::<u8>())),
    )
        .prop_map(|(seed, edits, dmg)| {
            let mut doc: Value = serde_json::from_str(seed).unwrap_or(Value::Null);
            for e in &edits {
                apply(&mut doc, e);
            }
            let text = doc.to_string();
            match dmg {
                Some((op, at, byte)) => {
                    String::from_utf8_lossy(&damage(&text, op, at, byte)).into_owned()
                }
                None => text,
            }
        });
    prop_oneof![
        6 => edited,
        1 => any_json().prop_map(|v| v.to_string()),
        1 => ".{0,64}",
    ]
}
