//! Queue management: list, create, update, delete, and the Queuey-only settings.
//!
//! `partitions` is the engine's (it only grows; the engine refuses a shrink) and
//! `type=public` is the engine's `public`. `consistency` (a Cassandra read level,
//! meaningless here but echoed) and `principles` are kept in one small value per
//! queue at `{app}//queuey/{q}`, a key the engine cannot produce (its queue keys
//! have a name where `queuey` stands, and its namespace keys use `//list` and
//! `//x/`). The value records the queue's creation time: settings written for an
//! earlier queue of the same name (deleted through another route set) are
//! ignored. A Queuey update reads the engine configuration and changes only
//! `partitions` and `public`, so limits set through v1 survive it.

use super::{int_field, ok_json, one_of, Fields, Params, Queuey, Refusal, Shown};
use crate::api::dialect::{all_queues, queue_config};
use crate::engine::{self, Env, QueueInfo};
use crate::model::{Millis, Name, QueueConfig, MAX_PARTITIONS};
use crate::store::Store;
use bytes::Bytes;
use http::{Response, StatusCode};
use serde::{Deserialize, Serialize};

/// Queue types, as colander lists them.
const TYPES: [&str; 2] = ["public", "user"];
/// Consistency levels, as colander lists them.
const CONSISTENCIES: [&str; 3] = ["weak", "strong", "very_strong"];
/// Longest Queuey queue name.
const MAX_NAME: usize = 50;

/// A queue's Queuey settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Settings {
    /// Creation time of the queue these settings belong to.
    at: Millis,
    /// `type=public`: anyone may view messages.
    pub public: bool,
    /// `weak`, `strong` or `very_strong`.
    consistency: String,
    /// `app:NAME` or `bid:user@host.tld`; empty: the owner only.
    pub principles: Vec<String>,
}

impl Settings {
    /// The settings of `info` found in `stored`, or the defaults.
    fn of(info: &QueueInfo, stored: Option<&[u8]>) -> Self {
        stored
            .and_then(|v| serde_json::from_slice::<Settings>(v).ok())
            .filter(|s| s.at == info.created_at)
            .unwrap_or_else(|| Settings {
                at: info.created_at,
                public: info.config.public,
                consistency: "strong".into(),
                principles: Vec::new(),
            })
    }

    fn kind(&self) -> &'static str {
        if self.public {
            "public"
        } else {
            "user"
        }
    }
}

fn settings_key(ns: &Name, q: &str) -> String {
    format!("{ns}//queuey/{q}")
}

impl<S: Store, E: Env> Queuey<'_, S, E> {
    /// Queue `q` (404 when missing) and its settings.
    pub(super) async fn queue(&self, q: &Name) -> Result<(QueueInfo, Settings), Refusal> {
        let info = self.cx.engine.get_queue(&self.ns, q).await?;
        let stored = self.store().get(&settings_key(&self.ns, q.as_str())).await;
        let stored = stored.map_err(engine::Error::from)?;
        let settings = Settings::of(&info, stored.as_deref());
        Ok((info, settings))
    }

    fn store(&self) -> &S {
        self.cx.engine.store()
    }
}

/// `GET /v1/{app}`: names sorted, from `offset`, at most `limit`.
pub(super) async fn list<S: Store, E: Env>(
    cx: &Queuey<'_, S, E>,
) -> Result<Response<Bytes>, Refusal> {
    cx.owner_only()?;
    let params = Params::new(cx.cx.parts.uri.query(), b"");
    let mut errors = Fields::default();
    let limit = int_field(params.get("limit"), 1, i64::MAX).unwrap_or_else(|m| {
        errors.add("limit", m);
        None
    });
    errors.check()?;
    let flag = |name| params.get(name).is_some_and(|v| v != "false" && v != "0");
    let (details, include_count) = (flag("details"), flag("include_count"));
    let mut queues = all_queues(cx.cx.engine, &cx.ns, include_count).await?;
    queues.sort_by(|a, b| a.name.cmp(&b.name));
    let offset = params.get("offset").unwrap_or("");
    queues.retain(|q| q.name.as_str() >= offset);
    queues.truncate(limit.map_or(usize::MAX, |l| usize::try_from(l).unwrap_or(usize::MAX)));
    let settings: Vec<Option<Vec<u8>>> = if details {
        let keys: Vec<String> = queues.iter().map(|q| settings_key(&cx.ns, &q.name)).collect();
        cx.store().get_many(&keys).await.map_err(engine::Error::from)?
    } else {
        vec![None; queues.len()]
    };
    let entries: Vec<Listed<'_>> = queues
        .iter()
        .zip(&settings)
        .map(|(q, stored)| {
            let s = Settings::of(q, stored.as_deref());
            Listed {
                queue_name: &q.name,
                details: details.then(|| Details {
                    application: &cx.app.name,
                    created: seconds(q.created_at),
                    consistency: s.consistency.clone(),
                    kind: s.kind(),
                    partitions: q.config.partitions,
                    principles: (!s.principles.is_empty()).then(|| s.principles.join(",")),
                }),
                count: include_count.then(|| q.stats.as_ref().map_or(0, |s| s.messages)),
            }
        })
        .collect();
    Ok(ok_json(&Queues { status: "ok", queues: entries }))
}

#[derive(Serialize)]
struct Queues<'a> {
    status: &'static str,
    queues: Vec<Listed<'a>>,
}

#[derive(Serialize)]
struct Listed<'a> {
    queue_name: &'a str,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    details: Option<Details<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    count: Option<u64>,
}

#[derive(Serialize)]
struct Details<'a> {
    application: &'a str,
    created: f64,
    consistency: String,
    #[serde(rename = "type")]
    kind: &'static str,
    partitions: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    principles: Option<String>,
}

/// Epoch seconds as a float.
fn seconds(ms: Millis) -> f64 {
    ms as f64 / 1000.0
}

/// The form fields of a create or update, all checked together.
struct Form {
    partitions: Option<u16>,
    public: bool,
    consistency: String,
    principles: Option<Vec<String>>,
}

fn form(params: &Params, errors: &mut Fields) -> Form {
    let partitions = match int_field(params.get("partitions"), 1, i64::from(MAX_PARTITIONS)) {
        Ok(p) => p.map(|p| p as u16),
        Err(m) => {
            errors.add("partitions", m);
            None
        }
    };
    let kind = one_of(params.get("type"), &TYPES).unwrap_or_else(|m| {
        errors.add("type", m);
        None
    });
    let consistency = one_of(params.get("consistency"), &CONSISTENCIES).unwrap_or_else(|m| {
        errors.add("consistency", m);
        None
    });
    let principles = params.get("principles").map(|list| {
        let list: Vec<String> = list.split(',').map(|p| p.trim().to_owned()).collect();
        if let Some(bad) = list.iter().find(|p| !principle(p)) {
            errors.add("principles", format!("\"{}\" is not a valid principle", Shown(bad)));
        }
        list
    });
    Form {
        partitions,
        public: kind == Some("public"),
        consistency: consistency.unwrap_or("strong").to_owned(),
        principles,
    }
}

/// `^(bid:\w+@\w+\.\w+|app:\w+)$`.
fn principle(p: &str) -> bool {
    let word = |w: &str| !w.is_empty() && w.chars().all(|c| c.is_alphanumeric() || c == '_');
    if let Some(app) = p.strip_prefix("app:") {
        return word(app);
    }
    let Some(bid) = p.strip_prefix("bid:") else { return false };
    let Some((user, host)) = bid.split_once('@') else { return false };
    let Some((domain, tld)) = host.split_once('.') else { return false };
    word(user) && word(domain) && word(tld)
}

/// `POST /v1/{app}` (form): creates the queue, or overwrites its settings, but
/// never takes partitions away (their messages would become unreachable): a
/// duplicate asking for fewer keeps the ones it has, and the answer says so.
pub(super) async fn create<S: Store, E: Env>(
    cx: &Queuey<'_, S, E>,
    body: &[u8],
) -> Result<Response<Bytes>, Refusal> {
    cx.owner_only()?;
    let params = Params::new(cx.cx.parts.uri.query(), body);
    let mut errors = Fields::default();
    let name = match params.get("queue_name") {
        None => {
            let env = cx.cx.engine.env();
            let random = (u128::from(env.random()) << 64) | u128::from(env.random());
            let v4 = (random & !(0xf << 76) & !(0x3 << 62)) | (0x4 << 76) | (0x2 << 62);
            Some(format!("{v4:032x}"))
        }
        Some(n) if n.chars().count() > MAX_NAME => {
            errors.add("queue_name", format!("Longer than maximum length {MAX_NAME}"));
            None
        }
        Some(n) if Name::new(n).is_err() => {
            errors.add("queue_name", "String does not match expected pattern");
            None
        }
        Some(n) => Some(n.to_owned()),
    };
    let form = form(&params, &mut errors);
    errors.check()?;
    let name = Name::new(name.as_deref().unwrap_or_default()).map_err(engine::Error::from)?;
    let old = match cx.cx.engine.get_queue(&cx.ns, &name).await {
        Ok(info) => Some(info.config),
        Err(engine::Error::QueueNotFound(_)) => None,
        Err(e) => return Err(e.into()),
    };
    let kept = old.as_ref().map_or(1, |c| c.partitions);
    let partitions = form.partitions.unwrap_or(1).max(kept);
    let (info, _) = save(cx, &name, old, partitions, &form).await?;
    let mut res = ok_json(&Created {
        status: "ok",
        queue_name: &info.name,
        partitions: info.config.partitions,
        kind: if form.public { "public" } else { "user" },
        consistency: &form.consistency,
        principles: form.principles.as_deref(),
    });
    *res.status_mut() = StatusCode::CREATED;
    Ok(res)
}

#[derive(Serialize)]
struct Created<'a> {
    status: &'static str,
    queue_name: &'a str,
    partitions: u16,
    #[serde(rename = "type")]
    kind: &'static str,
    consistency: &'a str,
    principles: Option<&'a [String]>,
}

/// Writes the engine configuration and the settings of queue `name`.
async fn save<S: Store, E: Env>(
    cx: &Queuey<'_, S, E>,
    name: &Name,
    old: Option<QueueConfig>,
    partitions: u16,
    form: &Form,
) -> Result<(QueueInfo, Settings), Refusal> {
    if old.as_ref().is_some_and(|c| partitions < c.partitions) {
        return Err(super::fail(
            StatusCode::BAD_REQUEST,
            Fields::one("InvalidUpdate", "Partitions can only be increased."),
        ));
    }
    let config = QueueConfig {
        partitions,
        public: form.public,
        ..old.unwrap_or_else(|| queue_config(None))
    };
    let (info, _) = cx.cx.engine.put_queue(&cx.ns, name, config).await?;
    let settings = Settings {
        at: info.created_at,
        public: form.public,
        consistency: form.consistency.clone(),
        principles: form.principles.clone().unwrap_or_default(),
    };
    let value =
        serde_json::to_vec(&settings).map_err(|e| engine::Error::BadRequest(e.to_string()))?;
    cx.store()
        .set(&settings_key(&cx.ns, name.as_str()), &value)
        .await
        .map_err(engine::Error::from)?;
    Ok((info, settings))
}

/// `PUT /v1/{app}/{q}` (form): partitions only grow; omitted `type` and
/// `consistency` reset to `user` and `strong`, omitted `principles` stay.
pub(super) async fn update<S: Store, E: Env>(
    cx: &Queuey<'_, S, E>,
    q: &Name,
    body: &[u8],
) -> Result<Response<Bytes>, Refusal> {
    let (info, settings) = cx.queue(q).await?;
    cx.owner_only()?;
    let params = Params::new(cx.cx.parts.uri.query(), body);
    let mut errors = Fields::default();
    let mut form = form(&params, &mut errors);
    errors.check()?;
    form.principles = form.principles.or(Some(settings.principles));
    let partitions = form.partitions.unwrap_or(info.config.partitions);
    let (info, settings) = save(cx, q, Some(info.config), partitions, &form).await?;
    Ok(ok_json(&Updated {
        status: "ok",
        queue_name: &info.name,
        partitions: info.config.partitions,
        created: seconds(info.created_at),
        principles: &settings.principles,
        kind: settings.kind(),
    }))
}

#[derive(Serialize)]
struct Updated<'a> {
    status: &'static str,
    queue_name: &'a str,
    partitions: u16,
    created: f64,
    principles: &'a [String],
    #[serde(rename = "type")]
    kind: &'static str,
}

/// `DELETE /v1/{app}/{q}`: the queue and all its messages.
pub(super) async fn delete<S: Store, E: Env>(
    cx: &Queuey<'_, S, E>,
    q: &Name,
) -> Result<Response<Bytes>, Refusal> {
    cx.queue(q).await?;
    cx.owner_only()?;
    cx.cx.engine.delete_queue(&cx.ns, q, false).await?;
    cx.store().delete(&settings_key(&cx.ns, q.as_str())).await.map_err(engine::Error::from)?;
    Ok(super::done())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn principles_follow_the_pattern() {
        for ok in ["app:notes", "app:a_1", "bid:joe@example.com"] {
            assert!(principle(ok), "{ok}");
        }
        for bad in ["", "app:", "app:a b", "bid:joe", "bid:joe@example", "user:x", "bid:@a.b"] {
            assert!(!principle(bad), "{bad}");
        }
    }
}
