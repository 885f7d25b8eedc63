//! The MontyExchange dialect (seed 002): a Flask front of RabbitMQ with two
//! routes, `POST /Message` (publish a JSON body) and `GET /Consume` (take the
//! oldest message), specified in `dialects/monty.md`.
//!
//! The broker objects are edgeq objects of the served namespace: the direct
//! exchange `monty.exchange`, the queue `monty-queue` and its binding with key
//! `message`. Like the original, which declared them on every publish, a publish
//! makes sure they exist (each step is idempotent, so concurrent first uses are
//! harmless; the binding is only logged when it is missing, because every
//! `bind` takes a ticket of the exchange's bounded binding log). The message is
//! then published through the exchange, so any other queue bound with `message`
//! receives it too. A consume never creates anything: without the queue there
//! is nothing to consume.
//!
//! Responses are Flask's `jsonify`: compact, keys sorted, non-ASCII as `\uXXXX`,
//! a trailing newline, which [`python_json`] reproduces (including Python's float
//! spelling). Where the original failed with a 500 (a body that is not JSON) or
//! lost a message (a number, bool or null taken off the queue and then not
//! rendered), edgeq answers 400 `{"Error": ...}` and stores nothing, or returns
//! the value as JSON. Other failures (a `monty.exchange` of another type made
//! through v1, a full queue, ...) keep their v1 status with the same body shape.
//!
//! Decisions beyond the spec: `GET /Consume` only answers GET (a HEAD would take
//! a message and drop it); a message that is not JSON (sent to `monty-queue`
//! through another route set) is returned as it was stored, with its content
//! type, rather than lost; integers beyond 64 bits are rendered as floats
//! (Python would keep every digit).

use super::{queue_config, Cx};
use crate::api::error::ApiError;
use crate::api::router::allow;
use crate::api::v1::wire;
use crate::engine::{self, Env, ExchangeKind, NewMessage};
use crate::model::{Name, MAX_BODY_LEN};
use crate::store::Store;
use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use serde_json::Value;
use std::fmt::Write;

/// The exchange every message is published to.
const EXCHANGE: &str = "monty.exchange";
/// The queue `/Consume` reads.
const QUEUE: &str = "monty-queue";
/// The routing key of publishes and of the queue's binding.
const ROUTING_KEY: &str = "message";

/// Serves one request inside the Monty mount; `rest` is the path inside it.
pub(super) async fn handle<S: Store, E: Env>(
    cx: &Cx<'_, S, E>,
    rest: &str,
    body: Bytes,
) -> Response<Bytes> {
    route(cx, rest, body).await.unwrap_or_else(refusal)
}

async fn route<S: Store, E: Env>(
    cx: &Cx<'_, S, E>,
    rest: &str,
    body: Bytes,
) -> Result<Response<Bytes>, ApiError> {
    let m = &cx.parts.method;
    match rest {
        "/Message" => {
            allow(m, "POST")?;
            publish(cx, body).await
        }
        "/Consume" => {
            allow(m, "GET")?;
            consume(cx).await
        }
        _ => Err(ApiError::no_route(cx.parts.uri.path())),
    }
}

/// `POST /Message`: any JSON value, whatever the Content-Type; 201.
async fn publish<S: Store, E: Env>(
    cx: &Cx<'_, S, E>,
    body: Bytes,
) -> Result<Response<Bytes>, ApiError> {
    if body.len() > MAX_BODY_LEN {
        return Err(ApiError::message_too_large(body.len()));
    }
    if let Err(e) = serde_json::from_slice::<Value>(&body) {
        return Err(ApiError::bad_request(
            "invalid_json",
            format!("The request body is not valid JSON: {e}"),
        ));
    }
    let exchange = Name::new(EXCHANGE).map_err(engine::Error::from)?;
    declare(cx, &exchange).await?;
    let msg =
        NewMessage { body, content_type: Some("application/json".into()), ..NewMessage::default() };
    for routed in cx.engine.publish(cx.ns, &exchange, ROUTING_KEY, msg).await? {
        routed.outcome?;
    }
    Ok(json(StatusCode::CREATED, &serde_json::json!({"Message": "Order Posted Successfully"})))
}

/// Creates the exchange, the queue and their binding where missing.
async fn declare<S: Store, E: Env>(cx: &Cx<'_, S, E>, exchange: &Name) -> Result<(), ApiError> {
    let queue = Name::new(QUEUE).map_err(engine::Error::from)?;
    let (info, _) = cx.engine.put_exchange(cx.ns, exchange, ExchangeKind::Direct).await?;
    cx.engine.create_queue(cx.ns, &queue, queue_config(None)).await?;
    if !info.bindings.iter().any(|b| b.queue == QUEUE && b.key == ROUTING_KEY) {
        cx.engine.bind(cx.ns, exchange, &queue, ROUTING_KEY).await?;
    }
    Ok(())
}

/// `GET /Consume`: removes the oldest message of `monty-queue` and returns it.
async fn consume<S: Store, E: Env>(cx: &Cx<'_, S, E>) -> Result<Response<Bytes>, ApiError> {
    let queue = Name::new(QUEUE).map_err(engine::Error::from)?;
    let popped = match cx.engine.pop(cx.ns, &queue, 1).await {
        Ok(popped) => popped.into_iter().next(),
        Err(engine::Error::QueueNotFound(_)) => None,
        Err(e) => return Err(e.into()),
    };
    let Some(m) = popped else {
        let empty = serde_json::json!({"Message": "There are no Available Messages to Consume."});
        return Ok(json(StatusCode::OK, &empty));
    };
    match serde_json::from_slice::<Value>(&m.body) {
        Ok(Value::String(text)) => {
            Ok(super::html_answer(Bytes::from(text), "text/html; charset=utf-8"))
        }
        Ok(value) => Ok(json(StatusCode::OK, &value)),
        Err(_) => {
            // Not ours: hand it back as stored rather than lose it.
            let mut res = Response::new(m.body);
            wire::put_content_type(res.headers_mut(), m.content_type.as_deref());
            Ok(res)
        }
    }
}

/// A refusal in the dialect's shape `{"Error": message}`, keeping the status
/// and headers (`Allow`, `Retry-After`) of the common mapping.
pub(super) fn refusal(e: ApiError) -> Response<Bytes> {
    let status = e.status();
    let body = python_json(&serde_json::json!({"Error": e.body().message}));
    let mut res = e.into_response();
    *res.status_mut() = status;
    *res.body_mut() = Bytes::from(body);
    res
}

/// A 200-style response of `value` as Flask's `jsonify` writes it.
fn json(status: StatusCode, value: &Value) -> Response<Bytes> {
    let mut res =
        with_type(Bytes::from(python_json(value)), HeaderValue::from_static("application/json"));
    *res.status_mut() = status;
    res
}

fn with_type(body: Bytes, content_type: HeaderValue) -> Response<Bytes> {
    let mut res = Response::new(body);
    res.headers_mut().insert(header::CONTENT_TYPE, content_type);
    res
}

/// `value` as Python's `json.dumps(value, sort_keys=True, ensure_ascii=True,
/// separators=(",", ":"))` plus a newline: what Flask's `jsonify` sends.
fn python_json(value: &Value) -> String {
    let mut out = String::new();
    write_value(value, &mut out);
    out.push('\n');
    out
}

/// Recursion is bounded: values come from `serde_json`, which refuses nesting
/// deeper than 128.
fn write_value(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => out.push_str(&i.to_string()),
            (_, Some(u), _) => out.push_str(&u.to_string()),
            (_, _, Some(f)) => write_float(f, out),
            _ => out.push_str(&n.to_string()),
        },
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            // UTF-8 byte order is code point order, which is how Python sorts.
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(k, out);
                out.push(':');
                write_value(v, out);
            }
            out.push('}');
        }
    }
}

/// A string with Python's `ensure_ascii` escapes: only printable ASCII is kept,
/// everything else is `\uXXXX` (surrogate pairs beyond the BMP).
fn write_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    // Writing to a String cannot fail.
                    let _ = write!(out, "\\u{u:04x}");
                }
            }
        }
    }
    out.push('"');
}

/// A float as Python's `repr`: the shortest digits that round-trip, positional
/// for decimal exponents -4..16 (always with a fraction), else `d.ddde+XX`.
fn write_float(f: f64, out: &mut String) {
    // `{:e}` gives the shortest round-trip digits: `-1.2345e-7`, `1e16`, `0e0`.
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    out.push_str(sign);
    if (-4..16).contains(&exp) {
        if exp < 0 {
            out.push_str("0.");
            out.extend(std::iter::repeat_n('0', (-exp - 1) as usize));
            out.push_str(&digits);
        } else {
            let int_len = exp as usize + 1;
            if digits.len() <= int_len {
                out.push_str(&digits);
                out.extend(std::iter::repeat_n('0', int_len - digits.len()));
                out.push_str(".0");
            } else {
                out.push_str(&digits[..int_len]);
                out.push('.');
                out.push_str(&digits[int_len..]);
            }
        }
    } else {
        out.push_str(mantissa);
        let _ = write!(out, "e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn py(text: &str) -> String {
        python_json(&serde_json::from_str(text).unwrap())
    }

    #[test]
    fn renders_like_flask_jsonify() {
        assert_eq!(
            py(r#"{"b": [1, -2, true, null], "a": "x"}"#),
            "{\"a\":\"x\",\"b\":[1,-2,true,null]}\n"
        );
        assert_eq!(
            py(r#""caf\u00e9 \ud83d\ude00 \u007f\u0001\"\\/""#),
            "\"caf\\u00e9 \\ud83d\\ude00 \\u007f\\u0001\\\"\\\\/\"\n"
        );
        assert_eq!(py(r#"{"é":1,"z":2,"Z":3}"#), "{\"Z\":3,\"z\":2,\"\\u00e9\":1}\n");
        assert_eq!(py("18446744073709551615"), "18446744073709551615\n");
    }

    #[test]
    fn floats_are_spelled_like_python_repr() {
        for (text, python) in [
            ("1.0", "1.0"),
            ("-0.0", "-0.0"),
            ("0.1", "0.1"),
            ("1.5", "1.5"),
            ("100.25", "100.25"),
            ("0.0001", "0.0001"),
            ("0.00001", "1e-05"),
            ("1.5e-7", "1.5e-07"),
            ("1e15", "1000000000000000.0"),
            ("1e16", "1e+16"),
            ("1.25e22", "1.25e+22"),
            ("1e300", "1e+300"),
            ("123456789.125", "123456789.125"),
        ] {
            assert_eq!(py(text), format!("{python}\n"), "{text}");
        }
    }
}
