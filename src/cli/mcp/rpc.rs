//! JSON-RPC 2.0 as `procs mcp` speaks it over stdio: one message per line, UTF-8.
//!
//! Owns: parsing one line into a request, a notification or an invalid message, and the
//! shape of answers and errors. Pure: no I/O (unit-tested here).
//! Invariants: a notification (no `id`) is never answered; an invalid message is answered
//! with `id: null` when its id cannot be read; batches (JSON arrays) are refused, as MCP
//! 2025-06-18 removed them.

use serde_json::{Value, json};

/// Invalid JSON.
pub const PARSE_ERROR: i64 = -32700;
/// Valid JSON, but not a JSON-RPC request.
pub const INVALID_REQUEST: i64 = -32600;
pub const METHOD_NOT_FOUND: i64 = -32601;
pub const INVALID_PARAMS: i64 = -32602;
/// MCP: the resource asked for does not exist.
pub const RESOURCE_NOT_FOUND: i64 = -32002;

/// A JSON-RPC error object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpcError {
    pub code: i64,
    pub message: String,
}

impl RpcError {
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// One incoming line.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    Request {
        id: Value,
        method: String,
        params: Value,
    },
    Notification {
        method: String,
    },
    /// Answer `error` to `id` (`null` when unknown).
    Invalid {
        id: Value,
        error: RpcError,
    },
    /// A response from the client (we send no requests, so it is ignored).
    Response,
}

/// Parse one line.
pub fn parse(line: &str) -> Incoming {
    let value: Value = match serde_json::from_str(line) {
        Ok(v) => v,
        Err(e) => {
            return Incoming::Invalid {
                id: Value::Null,
                error: RpcError::new(PARSE_ERROR, format!("not JSON: {e}")),
            };
        }
    };
    let Some(obj) = value.as_object() else {
        return Incoming::Invalid {
            id: Value::Null,
            error: RpcError::new(INVALID_REQUEST, "expected one JSON-RPC object (no batches)"),
        };
    };
    let id = obj.get("id").cloned();
    let valid_id = id
        .as_ref()
        .is_none_or(|id| id.is_string() || id.is_i64() || id.is_u64());
    if obj.get("jsonrpc").and_then(Value::as_str) != Some("2.0") || !valid_id {
        return Incoming::Invalid {
            id: id.filter(|_| valid_id).unwrap_or(Value::Null),
            error: RpcError::new(
                INVALID_REQUEST,
                "expected \"jsonrpc\": \"2.0\" and a string or integer id",
            ),
        };
    }
    let Some(method) = obj.get("method").and_then(Value::as_str) else {
        if obj.contains_key("result") || obj.contains_key("error") {
            return Incoming::Response;
        }
        return Incoming::Invalid {
            id: id.unwrap_or(Value::Null),
            error: RpcError::new(INVALID_REQUEST, "no `method`"),
        };
    };
    let params = obj.get("params").cloned().unwrap_or(json!({}));
    match id {
        Some(id) => Incoming::Request {
            id,
            method: method.to_owned(),
            params,
        },
        None => Incoming::Notification {
            method: method.to_owned(),
        },
    }
}

/// The answer to request `id`.
pub fn answer(id: Value, outcome: Result<Value, RpcError>) -> Value {
    let mut msg = serde_json::Map::new();
    msg.insert("jsonrpc".into(), "2.0".into());
    msg.insert("id".into(), id);
    match outcome {
        Ok(result) => msg.insert("result".into(), result),
        Err(e) => msg.insert(
            "error".into(),
            json!({ "code": e.code, "message": e.message }),
        ),
    };
    Value::Object(msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_notifications_and_responses_are_told_apart() {
        assert_eq!(
            parse(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#),
            Incoming::Request {
                id: json!(1),
                method: "ping".into(),
                params: json!({}),
            }
        );
        assert_eq!(
            parse(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#),
            Incoming::Notification {
                method: "notifications/initialized".into()
            }
        );
        assert_eq!(
            parse(r#"{"jsonrpc":"2.0","id":"a","result":{}}"#),
            Incoming::Response
        );
    }

    #[test]
    fn bad_lines_get_the_json_rpc_error_codes() {
        let code = |line: &str| match parse(line) {
            Incoming::Invalid { error, .. } => error.code,
            other => panic!("{line} parsed as {other:?}"),
        };
        assert_eq!(code("{nope"), PARSE_ERROR);
        assert_eq!(
            code(r#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#),
            INVALID_REQUEST
        );
        assert_eq!(code(r#"{"id":1,"method":"ping"}"#), INVALID_REQUEST);
        assert_eq!(
            code(r#"{"jsonrpc":"2.0","id":1.5,"method":"ping"}"#),
            INVALID_REQUEST
        );
        assert_eq!(code(r#"{"jsonrpc":"2.0","id":2}"#), INVALID_REQUEST);
        match parse(r#"{"jsonrpc":"2.0","id":7}"#) {
            Incoming::Invalid { id, .. } => assert_eq!(id, json!(7)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn answers_carry_the_id_and_either_result_or_error() {
        let ok = answer(json!("x"), Ok(json!({"a": 1})));
        assert_eq!(ok, json!({"jsonrpc": "2.0", "id": "x", "result": {"a": 1}}));
        let err = answer(json!(3), Err(RpcError::new(METHOD_NOT_FOUND, "no")));
        assert_eq!(err["error"]["code"], METHOD_NOT_FOUND);
        assert!(err.get("result").is_none());
    }
}
