//! Engine tests on the in-memory store with a manual clock: one rule per test.

use super::*;
use crate::model::{Name, QueueConfig};
use crate::store::{MemoryStore, StoreResult};
use bytes::Bytes;
use futures::executor::block_on;
use std::future::Future;

const T0: u64 = 1_800_000_000_000;

fn engine() -> Engine<MemoryStore, ManualEnv> {
    Engine::new(MemoryStore::new(), ManualEnv::new(T0, 7))
}

fn n(s: &str) -> Name {
    Name::new(s).unwrap()
}

fn msg(body: &str) -> NewMessage {
    NewMessage { body: Bytes::from(body.to_owned()), ..Default::default() }
}

fn send(e: &Engine<MemoryStore, ManualEnv>, q: &str, body: &str) -> Sent {
    block_on(e.send(&n("ns"), &n(q), vec![msg(body)])).unwrap().remove(0).unwrap()
}

fn pop_bodies(e: &Engine<MemoryStore, ManualEnv>, q: &str, count: usize) -> Vec<String> {
    block_on(e.pop(&n("ns"), &n(q), count))
        .unwrap()
        .into_iter()
        .map(|m| String::from_utf8(m.body.to_vec()).unwrap())
        .collect()
}

fn receive(e: &Engine<MemoryStore, ManualEnv>, q: &str, vt: u64) -> Vec<Message> {
    let opts = ReceiveOptions { count: 10, visibility_timeout: Some(vt), partition: None };
    block_on(e.receive(&n("ns"), &n(q), opts)).unwrap()
}

/// The keys of single slots (`ns/q/inc/p/i/…`), of which a drained queue whose
/// slots were all swept has none.
fn slot_keys(store: &MemoryStore) -> Vec<String> {
    store.keys().into_iter().filter(|k| k.matches('/').count() >= 5).collect()
}

fn create(e: &Engine<MemoryStore, ManualEnv>, q: &str, config: QueueConfig) {
    block_on(e.put_queue(&n("ns"), &n(q), config)).unwrap();
}

#[test]
fn pop_is_fifo_and_leaves_no_keys_behind() {
    let e = engine();
    create(&e, "q", QueueConfig::default());
    let baseline = e.store().len();
    for b in ["a", "b", "c"] {
        send(&e, "q", b);
    }
    assert_eq!(pop_bodies(&e, "q", 2), ["a", "b"]);
    assert_eq!(pop_bodies(&e, "q", 5), ["c"]);
    assert!(pop_bodies(&e, "q", 1).is_empty());
    let stats = block_on(e.get_queue(&n("ns"), &n("q"))).unwrap().stats.unwrap();
    assert_eq!((stats.messages, stats.bytes), (0, 0));
    // Ring counters and stats counters remain; no per-message key does.
    let left = slot_keys(e.store());
    assert!(left.is_empty(), "{left:?} (of {} keys, {baseline} before)", e.store().len());
}

#[test]
fn browsing_shows_how_often_each_message_was_received() {
    let e = engine();
    create(&e, "q", QueueConfig::default());
    send(&e, "q", "twice");
    send(&e, "q", "acked");
    assert_eq!(receive(&e, "q", 1).len(), 2);
    e.env().advance(1_000);
    let again = receive(&e, "q", 1);
    assert_eq!(again.len(), 2);
    block_on(e.ack(&n("ns"), &n("q"), &[again[1].receipt.unwrap()])).unwrap();
    send(&e, "q", "fresh");
    let opts = BrowseOptions { after: None, limit: 10, order: Order::Ascending, partition: None };
    let counts: Vec<(String, u32)> = block_on(e.browse(&n("ns"), &n("q"), opts))
        .unwrap()
        .messages
        .into_iter()
        .map(|m| (String::from_utf8(m.body.to_vec()).unwrap(), m.receive_count))
        .collect();
    assert_eq!(counts, [("twice".to_owned(), 2), ("fresh".to_owned(), 0)]);
    let id = again[0].id;
    assert_eq!(block_on(e.get_message(&n("ns"), &n("q"), id)).unwrap().receive_count, 2);
}

#[test]
fn a_lease_hides_the_message_until_it_expires_then_counts_receives() {
    let e = engine();
    create(&e, "q", QueueConfig::default());
    send(&e, "q", "x");
    let first = receive(&e, "q", 10);
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].receive_count, 1);
    assert!(receive(&e, "q", 10).is_empty());
    e.env().advance(10_001);
    let second = receive(&e, "q", 10);
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].receive_count, 2);
    assert_eq!(second[0].id, first[0].id);
    let stale = block_on(e.ack(&n("ns"), &n("q"), &[first[0].receipt.unwrap()])).unwrap();
    assert!(matches!(stale[0], Err(Error::StaleReceipt(_))));
    let ok = block_on(e.ack(&n("ns"), &n("q"), &[second[0].receipt.unwrap()])).unwrap();
    assert_eq!(ok[0], Ok(()));
    e.env().advance(60_000);
    assert!(receive(&e, "q", 10).is_empty());
    let stats = block_on(e.get_queue(&n("ns"), &n("q"))).unwrap().stats.unwrap();
    assert_eq!((stats.messages, stats.in_flight), (0, 0));
}

#[test]
fn a_receipt_is_refused_by_another_queue() {
    let e = engine();
    create(&e, "a", QueueConfig::default());
    create(&e, "b", QueueConfig::default());
    send(&e, "a", "x");
    send(&e, "b", "y");
    let ra = receive(&e, "a", 10)[0].receipt.unwrap();
    let rb = receive(&e, "b", 10)[0].receipt.unwrap();
    // Both are the first lease of a first slot: only the queue tells them apart.
    assert_eq!((ra.generation, ra.slot, ra.claim), (rb.generation, rb.slot, rb.claim));
    assert_ne!(ra.queue, rb.queue);
    let got = block_on(e.ack(&n("ns"), &n("a"), &[rb])).unwrap();
    assert!(matches!(got[..], [Err(Error::InvalidReceipt(_))]), "{got:?}");
    let stats = block_on(e.get_queue(&n("ns"), &n("a"))).unwrap().stats.unwrap();
    assert_eq!((stats.messages, stats.in_flight), (1, 1));
    assert!(block_on(e.ack(&n("ns"), &n("a"), &[ra])).unwrap()[0].is_ok());
    assert!(block_on(e.ack(&n("ns"), &n("b"), &[rb])).unwrap()[0].is_ok());
}

#[test]
fn ids_do_not_repeat_after_a_purge_in_the_same_millisecond() {
    let e = engine();
    create(&e, "q", QueueConfig::default());
    let first = send(&e, "q", "before").id;
    block_on(e.purge_queue(&n("ns"), &n("q"))).unwrap();
    // The clock has not moved, and the new incarnation starts at slot 1 again.
    let again = send(&e, "q", "after").id;
    assert_eq!((first.millis(), first.slot()), (again.millis(), again.slot()));
    assert_ne!(first, again);
    assert!(matches!(
        block_on(e.get_message(&n("ns"), &n("q"), first)),
        Err(Error::MessageNotFound(_))
    ));
    assert_eq!(block_on(e.get_message(&n("ns"), &n("q"), again)).unwrap().body, "after");
}

#[test]
fn deleting_a_leased_message_takes_it_out_of_flight_once() {
    let e = engine();
    create(&e, "q", QueueConfig::default());
    send(&e, "q", "first");
    let id = send(&e, "q", "second").id;
    let leased = receive(&e, "q", 60);
    assert_eq!(leased.len(), 2);
    let r = leased[1].receipt.unwrap();
    let in_flight = || block_on(e.get_queue(&n("ns"), &n("q"))).unwrap().stats.unwrap().in_flight;
    assert_eq!(in_flight(), 2);
    // The first message's lease keeps the low-water mark below the second's
    // slot, so its claim records stay after the delete.
    block_on(e.delete_message(&n("ns"), &n("q"), id)).unwrap();
    assert_eq!(in_flight(), 1);
    // The holder, past the delete's hold, finds the message gone: a nack or
    // extend is stale, and its ack succeeds without counting it out again.
    e.env().advance(ring::GRACE);
    let nack = block_on(e.nack(&n("ns"), &n("q"), &[r], 0)).unwrap();
    assert!(matches!(nack[..], [Err(Error::StaleReceipt(_))]), "{nack:?}");
    assert!(block_on(e.ack(&n("ns"), &n("q"), &[r])).unwrap()[0].is_ok());
    assert_eq!(in_flight(), 1);
    assert!(block_on(e.ack(&n("ns"), &n("q"), &[leased[0].receipt.unwrap()])).unwrap()[0].is_ok());
    assert_eq!(in_flight(), 0);
}

#[test]
fn nack_and_extend_move_the_lease_end() {
    let e = engine();
    create(&e, "q", QueueConfig::default());
    send(&e, "q", "x");
    let m = receive(&e, "q", 5).remove(0);
    let r = m.receipt.unwrap();
    assert_eq!(block_on(e.extend(&n("ns"), &n("q"), &[r], 60)).unwrap()[0], Ok(()));
    e.env().advance(30_000);
    assert!(receive(&e, "q", 5).is_empty(), "extended lease still holds");
    assert_eq!(block_on(e.nack(&n("ns"), &n("q"), &[r], 0)).unwrap()[0], Ok(()));
    let again = receive(&e, "q", 5);
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].receive_count, 2);
}

#[test]
fn delayed_messages_wait_and_do_not_block_the_ones_behind() {
    let e = engine();
    create(&e, "q", QueueConfig::default());
    let delayed = NewMessage { delay: Some(5), ..msg("later") };
    block_on(e.send(&n("ns"), &n("q"), vec![delayed, msg("now")])).unwrap();
    assert_eq!(pop_bodies(&e, "q", 5), ["now"]);
    e.env().advance(5_000);
    assert_eq!(pop_bodies(&e, "q", 5), ["later"]);
}

#[test]
fn a_message_without_delay_is_visible_to_a_host_whose_clock_is_behind() {
    let store = std::sync::Arc::new(MemoryStore::new());
    let ahead = Engine::new(store.clone(), ManualEnv::new(T0 + 500, 1));
    let behind = Engine::new(store, ManualEnv::new(T0, 2));
    block_on(ahead.put_queue(&n("ns"), &n("q"), QueueConfig::default())).unwrap();
    block_on(ahead.send(&n("ns"), &n("q"), vec![msg("m")])).unwrap();
    let got = block_on(behind.pop(&n("ns"), &n("q"), 1)).unwrap();
    assert_eq!(got.len(), 1, "the message was deferred until the sender's clock");
    // A delayed one still waits for its delay, on the later clock.
    let later = NewMessage { delay: Some(1), ..msg("later") };
    block_on(ahead.send(&n("ns"), &n("q"), vec![later])).unwrap();
    behind.env().advance(1_000);
    assert!(block_on(behind.pop(&n("ns"), &n("q"), 1)).unwrap().is_empty());
    behind.env().advance(500);
    assert_eq!(block_on(behind.pop(&n("ns"), &n("q"), 1)).unwrap().len(), 1);
}

#[test]
fn the_oldest_age_sees_the_backlog_past_finished_slots_not_swept_yet() {
    let e = engine();
    create(&e, "q", QueueConfig::default());
    for i in 0..20 {
        send(&e, "q", &format!("m{i}"));
    }
    let leased = receive(&e, "q", 30);
    let more = receive(&e, "q", 30);
    let receipts: Vec<Receipt> =
        leased.iter().chain(&more).rev().map(|m| m.receipt.unwrap()).collect();
    // Acked newest first: only the last ack sits at the mark, so the mark moves
    // past one slot and 19 finished slots wait for a scan to sweep them.
    for r in receipts {
        assert!(block_on(e.ack(&n("ns"), &n("q"), &[r])).unwrap()[0].is_ok());
    }
    e.env().advance(3_000);
    send(&e, "q", "waiting");
    let stats = block_on(e.get_queue(&n("ns"), &n("q"))).unwrap().stats.unwrap();
    assert_eq!(stats.messages, 1);
    assert_eq!(stats.oldest_age_ms, Some(0));
    e.env().advance(2_000);
    let stats = block_on(e.get_queue(&n("ns"), &n("q"))).unwrap().stats.unwrap();
    assert_eq!(stats.oldest_age_ms, Some(2_000));
}

#[test]
fn scans_sweep_a_long_run_of_slots_finished_out_of_order() {
    let e = engine();
    create(&e, "q", QueueConfig::default());
    for i in 0..200 {
        send(&e, "q", &format!("m{i}"));
    }
    let mut receipts = Vec::new();
    for _ in 0..20 {
        receipts.extend(receive(&e, "q", 30).into_iter().map(|m| m.receipt.unwrap()));
    }
    assert_eq!(receipts.len(), 200);
    // Newest first: each ack but the last leaves its slot finished behind the mark.
    for r in receipts.into_iter().rev() {
        assert!(block_on(e.ack(&n("ns"), &n("q"), &[r])).unwrap()[0].is_ok());
    }
    let left = || slot_keys(e.store()).len();
    // Each slot finished behind the mark keeps its state, commit counter,
    // delivery count and claim record until a scan sweeps it.
    assert!(left() >= 199 * 4, "{}", left());
    // Two calls on the empty queue scan; one of them starts at the mark.
    assert!(pop_bodies(&e, "q", 1).is_empty());
    assert!(pop_bodies(&e, "q", 1).is_empty());
    assert_eq!(left(), 0);
}

#[test]
fn expired_messages_are_never_delivered() {
    let e = engine();
    create(&e, "q", QueueConfig::default());
    let short = NewMessage { ttl: Some(1), ..msg("gone") };
    block_on(e.send(&n("ns"), &n("q"), vec![short])).unwrap();
    e.env().advance(1_000);
    assert!(pop_bodies(&e, "q", 5).is_empty());
    let stats = block_on(e.get_queue(&n("ns"), &n("q"))).unwrap().stats.unwrap();
    assert_eq!(stats.messages, 0);
}

#[test]
fn max_receives_moves_the_message_to_the_dead_letter_queue() {
    let e = engine();
    create(&e, "dlq", QueueConfig::default());
    let config = QueueConfig {
        max_receives: Some(2),
        dead_letter_queue: Some("dlq".into()),
        ..Default::default()
    };
    create(&e, "q", config);
    send(&e, "q", "poison");
    for _ in 0..2 {
        assert_eq!(receive(&e, "q", 1).len(), 1);
        e.env().advance(1_000);
    }
    assert!(receive(&e, "q", 1).is_empty());
    let moved = receive(&e, "dlq", 1);
    assert_eq!(moved.len(), 1);
    assert_eq!(moved[0].body, Bytes::from("poison"));
    assert_eq!(moved[0].receive_count, 3);
    let stats = block_on(e.get_queue(&n("ns"), &n("q"))).unwrap().stats.unwrap();
    assert_eq!((stats.messages, stats.dead_lettered, stats.in_flight), (0, 1, 0));
}

#[test]
fn idempotency_keys_store_once_even_after_the_message_is_gone() {
    let e = engine();
    create(&e, "q", QueueConfig::default());
    let keyed = || NewMessage { idempotency_key: Some("k1".into()), ..msg("once") };
    let first = block_on(e.send(&n("ns"), &n("q"), vec![keyed()])).unwrap().remove(0).unwrap();
    assert!(!first.duplicate);
    assert_eq!(pop_bodies(&e, "q", 5), ["once"]);
    let again = block_on(e.send(&n("ns"), &n("q"), vec![keyed()])).unwrap().remove(0).unwrap();
    assert_eq!(again, Sent { id: first.id, duplicate: true });
    assert!(pop_bodies(&e, "q", 5).is_empty());
}

fn send_keyed(e: &Engine<MemoryStore, ManualEnv>, key: &str) -> Sent {
    let m = NewMessage { idempotency_key: Some(key.into()), ..msg(key) };
    block_on(e.send(&n("ns"), &n("q"), vec![m])).unwrap().remove(0).unwrap()
}

/// Keys of the idempotency records and log (`idem.rs`) held for queue `q`.
fn idem_keys(store: &MemoryStore) -> Vec<String> {
    store
        .keys()
        .into_iter()
        .filter(|k| ["/i/", "/I/", "/il/", "/ilc"].iter().any(|p| k.contains(p)))
        .collect()
}

/// Sends `count` messages with fresh keys (`fresh0`, …): each logs its key, and
/// entry 1 of a bucket and every eighth take a cleaning step.
fn send_fresh(e: &Engine<MemoryStore, ManualEnv>, count: usize) {
    for i in 0..count {
        assert!(!send_keyed(e, &format!("fresh{i}")).duplicate);
    }
}

#[test]
fn a_key_whose_send_was_refused_is_free_for_the_next_repeat() {
    let e = engine();
    create(&e, "q", QueueConfig { max_messages: Some(1), ..Default::default() });
    send(&e, "q", "filler");
    let keyed = NewMessage { idempotency_key: Some("k".into()), ..msg("k") };
    let refused = block_on(e.send(&n("ns"), &n("q"), vec![keyed])).unwrap().remove(0);
    assert!(matches!(refused, Err(Error::QueueFull(_))), "{refused:?}");
    assert_eq!(pop_bodies(&e, "q", 1), ["filler"]);
    // The clock has not moved: no takeover delay stands between the two.
    let sent = send_keyed(&e, "k");
    assert!(!sent.duplicate);
    assert_eq!(send_keyed(&e, "k").id, sent.id, "and the key holds from then on");
    assert_eq!(pop_bodies(&e, "q", 2), ["k"]);
}

#[test]
fn idempotency_records_are_forgotten_after_the_window() {
    let e = engine();
    create(&e, "q", QueueConfig::default());
    let first: Vec<Sent> = (0..20).map(|i| send_keyed(&e, &format!("k{i}"))).collect();
    assert_eq!(pop_bodies(&e, "q", 100).len(), 20);
    assert_eq!(send_keyed(&e, "k3"), Sent { id: first[3].id, duplicate: true });
    // Three windows later every bucket of those keys is closed: the steps of
    // later senders clean it, and a repeat is a new message.
    e.env().advance(3 * IDEM_WINDOW);
    send_fresh(&e, 16);
    let first_bucket = format!("/il/{}", T0 / IDEM_WINDOW);
    let left: Vec<String> = idem_keys(e.store())
        .into_iter()
        .filter(|k| k.contains("/k") || k.contains(&first_bucket))
        .collect();
    assert_eq!(left, Vec::<String>::new());
    // The fresh keys' records and log entries stay for their window.
    assert_eq!(idem_keys(e.store()).len(), 2 * 16 + 16 + 2);
    let again = send_keyed(&e, "k3");
    assert!(!again.duplicate);
    assert_ne!(again.id, first[3].id);
    assert_eq!(pop_bodies(&e, "q", 100).len(), 17);
}

#[test]
fn a_repeat_within_the_window_is_still_a_duplicate() {
    let e = engine();
    create(&e, "q", QueueConfig::default());
    let first = send_keyed(&e, "k");
    e.env().advance(IDEM_WINDOW);
    send_fresh(&e, 16);
    assert_eq!(send_keyed(&e, "k"), Sent { id: first.id, duplicate: true });
}

#[test]
fn cleaning_steps_past_a_log_entry_that_never_came() {
    let e = engine();
    create(&e, "q", QueueConfig::default());
    // A sender took log entry 1 and died before writing it.
    let qk = super::keys::QueueKeys::new(&n("ns"), &n("q"), 0);
    block_on(e.store().increment(&qk.idem_log_len(T0 / IDEM_WINDOW), 1)).unwrap();
    send_keyed(&e, "k1");
    send_keyed(&e, "k2");
    e.env().advance(3 * IDEM_WINDOW);
    send_fresh(&e, 8);
    assert!(!idem_keys(e.store()).iter().any(|k| k.contains("/k")), "{:?}", idem_keys(e.store()));
    assert!(!send_keyed(&e, "k1").duplicate);
}

#[test]
fn an_old_log_entry_leaves_a_newer_record_alone() {
    let e = engine();
    create(&e, "q", QueueConfig::default());
    // An entry for `k` from long ago whose records were deleted already (by a
    // racing cleaner); the key has been sent again since.
    let qk = super::keys::QueueKeys::new(&n("ns"), &n("q"), 0);
    let old = T0 / IDEM_WINDOW;
    block_on(e.store().increment(&qk.idem_log_len(old), 1)).unwrap();
    block_on(e.store().set(&qk.idem_log(old, 1), b"k")).unwrap();
    block_on(e.store().set(&qk.idem_cleaned(), format!("{old},1").as_bytes())).unwrap();
    e.env().advance(3 * IDEM_WINDOW);
    let first = send_keyed(&e, "k");
    assert!(block_on(e.store().get(&qk.idem_log(old, 1))).unwrap().is_none(), "cleaned");
    assert_eq!(send_keyed(&e, "k"), Sent { id: first.id, duplicate: true });
}

/// Keys of incarnation `inc` of queue `q` of namespace `ns`.
fn incarnation_keys(store: &MemoryStore, q: &str, inc: u64) -> Vec<String> {
    let (prefix, creation) = (format!("ns/{q}/{inc}/"), format!("ns/{q}//new/{inc}"));
    store.keys().into_iter().filter(|k| k.starts_with(&prefix) || *k == creation).collect()
}

/// Asserts that no key of incarnation `inc` of `q` is left (naming a few).
fn assert_reclaimed(store: &MemoryStore, q: &str, inc: u64) {
    let left = incarnation_keys(store, q, inc);
    assert!(left.is_empty(), "{} keys left, such as {:?}", left.len(), &left[..left.len().min(5)]);
}

/// Fills queue `q` with what leaves keys behind: plain, keyed, chunked, delayed
/// and leased messages, over its partitions.
fn fill(e: &Engine<MemoryStore, ManualEnv>, q: &str, plain: usize) {
    for i in 0..plain {
        send(e, q, &format!("m{i}"));
    }
    let big = NewMessage { body: Bytes::from(vec![7; 2 * 1024 * 1024]), ..Default::default() };
    let keyed = NewMessage { idempotency_key: Some("k".into()), ..msg("keyed") };
    let delayed = NewMessage { delay: Some(60), ..msg("later") };
    block_on(e.send(&n("ns"), &n(q), vec![big, keyed, delayed])).unwrap();
    assert_eq!(receive(e, q, 30).len(), 10);
    assert_eq!(pop_bodies(e, q, 3).len(), 3);
}

#[test]
fn purge_reclaims_the_old_incarnation_at_once_when_it_is_small() {
    let e = engine();
    create(&e, "q", QueueConfig { partitions: 3, ..Default::default() });
    fill(&e, "q", 40);
    assert!(!incarnation_keys(e.store(), "q", 0).is_empty());
    // Held: 43 sent, 3 popped (the 10 leased still count).
    assert_eq!(block_on(e.purge_queue(&n("ns"), &n("q"))).unwrap(), 40);
    assert_reclaimed(e.store(), "q", 0);
    // The graveyard is empty again: its counter and cursor are all that stay.
    let graveyard: Vec<String> =
        e.store().keys().into_iter().filter(|k| k.contains("//gy")).collect();
    assert_eq!(graveyard, ["ns//gy", "ns//gyc"]);
    assert!(!block_on(e.reclaim_step(&n("ns"))).unwrap());
    // The new incarnation works.
    send(&e, "q", "after");
    assert_eq!(pop_bodies(&e, "q", 5), ["after"]);
}

#[test]
fn delete_reclaims_the_queue_and_its_list_entry() {
    let e = engine();
    create(&e, "q", QueueConfig::default());
    create(&e, "other", QueueConfig::default());
    fill(&e, "q", 20);
    let before = e.store().keys();
    block_on(e.delete_queue(&n("ns"), &n("q"), false)).unwrap();
    assert_reclaimed(e.store(), "q", 0);
    assert!(before.contains(&"ns//list/1".to_owned()));
    assert!(!e.store().keys().contains(&"ns//list/1".to_owned()));
    let listed = block_on(e.list_queues(&n("ns"), None, 10, None, false)).unwrap();
    assert_eq!(listed.queues.iter().map(|q| q.name.as_str()).collect::<Vec<_>>(), ["other"]);
    create(&e, "q", QueueConfig::default());
    send(&e, "q", "again");
    assert_eq!(pop_bodies(&e, "q", 5), ["again"]);
}

#[test]
fn consumers_finish_reclaiming_a_large_purge() {
    let e = engine();
    create(&e, "q", QueueConfig::default());
    create(&e, "other", QueueConfig::default());
    fill(&e, "q", 2000);
    block_on(e.purge_queue(&n("ns"), &n("q"))).unwrap();
    // The purge's own steps took part of it; pops on any queue of the
    // namespace take the rest, one call in RECLAIM_EVERY.
    assert!(!incarnation_keys(e.store(), "q", 0).is_empty());
    assert_eq!(block_on(e.reclaim_backlog(&n("ns"))).unwrap(), 1);
    let mut pops = 0;
    while !incarnation_keys(e.store(), "q", 0).is_empty() {
        assert!(pop_bodies(&e, "other", 1).is_empty());
        pops += 1;
        assert!(pops < 2_000, "{} keys left", incarnation_keys(e.store(), "q", 0).len());
    }
    assert_eq!(block_on(e.reclaim_backlog(&n("ns"))).unwrap(), 0);
}

#[test]
fn reclaiming_never_touches_the_live_incarnation() {
    let e = engine();
    create(&e, "q", QueueConfig { partitions: 2, ..Default::default() });
    fill(&e, "q", 3000);
    block_on(e.purge_queue(&n("ns"), &n("q"))).unwrap();
    // The new incarnation is in use while the old one is still being reclaimed.
    assert!(!incarnation_keys(e.store(), "q", 0).is_empty());
    for i in 0..60 {
        send(&e, "q", &format!("new{i}"));
    }
    assert_eq!(receive(&e, "q", 30).len(), 10);
    while block_on(e.reclaim_step(&n("ns"))).unwrap() {}
    assert_reclaimed(e.store(), "q", 0);
    let stats = block_on(e.get_queue(&n("ns"), &n("q"))).unwrap().stats.unwrap();
    assert_eq!((stats.messages, stats.in_flight), (60, 10));
    assert_eq!(pop_bodies(&e, "q", 100).len(), 50);
}

#[test]
fn an_unreadable_graveyard_cursor_starts_over() {
    let e = engine();
    create(&e, "q", QueueConfig::default());
    fill(&e, "q", 20);
    block_on(e.purge_queue(&n("ns"), &n("q"))).unwrap();
    fill(&e, "q", 20);
    block_on(e.store().set("ns//gyc", b"not a cursor")).unwrap();
    block_on(e.purge_queue(&n("ns"), &n("q"))).unwrap();
    while block_on(e.reclaim_step(&n("ns"))).unwrap() {}
    assert_reclaimed(e.store(), "q", 1);
    assert_eq!(block_on(e.store().get("ns//gyc")).unwrap().as_deref(), Some(&b"3,R,0,0,0"[..]));
}

#[test]
fn reclaim_steps_that_fail_half_way_are_taken_again() {
    use crate::store::{FaultPlan, FaultyStore};
    use std::sync::Arc;
    let shared = Arc::new(MemoryStore::new());
    let env = ManualEnv::new(T0, 7);
    let e = Engine::new(shared.clone(), env.clone());
    block_on(e.put_queue(&n("ns"), &n("q"), QueueConfig { partitions: 2, ..Default::default() }))
        .unwrap();
    for i in 0..700 {
        block_on(e.send(&n("ns"), &n("q"), vec![msg(&format!("m{i}"))])).unwrap();
    }
    block_on(e.purge_queue(&n("ns"), &n("q"))).unwrap();
    // Half of the steps' calls fail, before or after their effect.
    let plan =
        FaultPlan { seed: 3, max_delay: 0, fail_before_ppm: 250_000, fail_after_ppm: 250_000 };
    let faulty = Engine::new(FaultyStore::new(shared.clone(), plan), env);
    let failed = (0..40).filter(|_| block_on(faulty.reclaim_step(&n("ns"))).is_err()).count();
    assert!(failed > 5, "{failed}");
    while block_on(e.reclaim_step(&n("ns"))).unwrap() {}
    assert_reclaimed(&shared, "q", 0);
}

#[test]
fn large_bodies_round_trip_through_chunks() {
    let e = engine();
    create(&e, "q", QueueConfig::default());
    let body: Vec<u8> = (0..3 * 1024 * 1024 + 17).map(|i| (i % 251) as u8).collect();
    let m = NewMessage { body: Bytes::from(body.clone()), ..Default::default() };
    let sent = block_on(e.send(&n("ns"), &n("q"), vec![m])).unwrap().remove(0).unwrap();
    let got = block_on(e.get_message(&n("ns"), &n("q"), sent.id)).unwrap();
    assert_eq!(got.body.len(), body.len());
    assert!(got.body == body);
    let popped = block_on(e.pop(&n("ns"), &n("q"), 1)).unwrap();
    assert!(popped[0].body == body);
    let too_big =
        NewMessage { body: Bytes::from(vec![0; 4 * 1024 * 1024 + 1]), ..Default::default() };
    // Refused before anything is stored, as every rule a message breaks.
    let r = block_on(e.send(&n("ns"), &n("q"), vec![too_big, msg("fits")]));
    assert!(matches!(r, Err(Error::MessageTooLarge(_))), "{r:?}");
    assert!(pop_bodies(&e, "q", 1).is_empty());
}

#[test]
fn messages_that_expired_unconsumed_make_room_when_the_queue_is_full() {
    let e = engine();
    create(&e, "q", QueueConfig { max_messages: Some(2), ..Default::default() });
    let short = |b: &str| NewMessage { ttl: Some(1), ..msg(b) };
    block_on(e.send(&n("ns"), &n("q"), vec![short("old1"), short("old2")])).unwrap();
    e.env().advance(1_000);
    // Both expired: the send that finds the queue full finishes them first.
    send(&e, "q", "new1");
    let stats = block_on(e.get_queue(&n("ns"), &n("q"))).unwrap().stats.unwrap();
    assert_eq!(stats.messages, 1);
    // A live message at the head ends the reap: live messages keep their order
    // and the queue stays full.
    send(&e, "q", "new2");
    let r = block_on(e.send(&n("ns"), &n("q"), vec![msg("new3")])).unwrap();
    assert!(matches!(r[0], Err(Error::QueueFull(_))), "{r:?}");
    assert_eq!(pop_bodies(&e, "q", 5), ["new1", "new2"]);
}

#[test]
fn a_queue_holding_only_expired_messages_is_empty_to_delete() {
    let e = engine();
    create(&e, "q", QueueConfig::default());
    block_on(e.send(&n("ns"), &n("q"), vec![NewMessage { ttl: Some(1), ..msg("x") }])).unwrap();
    let refused = block_on(e.delete_queue(&n("ns"), &n("q"), true));
    assert!(matches!(refused, Err(Error::QueueNotEmpty(_))), "{refused:?}");
    e.env().advance(1_000);
    block_on(e.delete_queue(&n("ns"), &n("q"), true)).unwrap();
}

#[test]
fn capacity_limits_refuse_and_keep_counts_right() {
    let e = engine();
    create(&e, "q", QueueConfig { max_messages: Some(2), ..Default::default() });
    send(&e, "q", "1");
    send(&e, "q", "2");
    let r = block_on(e.send(&n("ns"), &n("q"), vec![msg("3")])).unwrap();
    assert!(matches!(r[0], Err(Error::QueueFull(_))));
    let stats = block_on(e.get_queue(&n("ns"), &n("q"))).unwrap().stats.unwrap();
    assert_eq!((stats.messages, stats.bytes), (2, 2));
}

#[test]
fn browse_by_id_and_overwrite_and_delete() {
    let e = engine();
    create(&e, "q", QueueConfig { partitions: 2, ..Default::default() });
    let ids: Vec<_> = (0..5)
        .map(|i| {
            let m = NewMessage { partition: Some(i % 2), ..msg(&i.to_string()) };
            block_on(e.send(&n("ns"), &n("q"), vec![m])).unwrap().remove(0).unwrap().id
        })
        .collect();
    let all = |order, after| {
        let opts = BrowseOptions { after, limit: 100, order, partition: None };
        block_on(e.browse(&n("ns"), &n("q"), opts))
            .unwrap()
            .messages
            .into_iter()
            .map(|m| String::from_utf8(m.body.to_vec()).unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(all(Order::Ascending, None), ["0", "2", "4", "1", "3"]);
    assert_eq!(all(Order::Descending, None), ["3", "1", "4", "2", "0"]);
    assert_eq!(all(Order::Ascending, Some(ids[2])), ["4", "1", "3"]);
    // An overwrite keeps to the send's Content-Type rule, and a refused one changes nothing.
    let tab = Some("text/plain;\tcharset=utf-8".to_owned());
    let refused = block_on(e.put_message(&n("ns"), &n("q"), ids[0], Bytes::from("x"), tab, None));
    assert!(matches!(refused, Err(Error::BadRequest(_))), "{refused:?}");
    assert_eq!(block_on(e.get_message(&n("ns"), &n("q"), ids[0])).unwrap().body, "0");
    block_on(e.put_message(&n("ns"), &n("q"), ids[0], Bytes::from("zero"), None, None)).unwrap();
    assert_eq!(block_on(e.get_message(&n("ns"), &n("q"), ids[0])).unwrap().body, "zero");
    block_on(e.delete_message(&n("ns"), &n("q"), ids[2])).unwrap();
    assert!(matches!(
        block_on(e.get_message(&n("ns"), &n("q"), ids[2])),
        Err(Error::MessageNotFound(_))
    ));
    assert_eq!(all(Order::Ascending, None), ["zero", "4", "1", "3"]);
}

#[test]
fn a_browse_that_runs_out_of_slots_to_read_says_where_to_go_on() {
    let e = engine();
    create(&e, "q", QueueConfig::default());
    // A message held at the low-water mark, 10,000 consumed ones behind it (not
    // swept: the held one keeps the mark), then one more.
    send(&e, "q", "held");
    assert_eq!(receive(&e, "q", 60).len(), 1);
    for i in 0..10_000 {
        send(&e, "q", &i.to_string());
    }
    assert_eq!(pop_bodies(&e, "q", 100).len(), 100);
    for _ in 1..100 {
        assert_eq!(pop_bodies(&e, "q", 100).len(), 100);
    }
    send(&e, "q", "last");
    let browse = |after| {
        let opts = BrowseOptions { after, limit: 10, order: Order::Ascending, partition: None };
        block_on(e.browse(&n("ns"), &n("q"), opts)).unwrap()
    };
    let first = browse(None);
    let bodies = |p: &BrowsePage| p.messages.iter().map(|m| m.body.clone()).collect::<Vec<_>>();
    assert_eq!(bodies(&first), ["held"], "the slot budget ends the page");
    let next = first.next_after.expect("a place to go on from, not the end");
    let second = browse(Some(next));
    assert_eq!(bodies(&second), ["last"]);
    assert_eq!(second.next_after, None);
}

#[test]
fn queues_list_in_creation_order_and_purge_and_delete() {
    let e = engine();
    for q in ["b", "a", "c"] {
        create(&e, q, QueueConfig::default());
    }
    send(&e, "a", "x");
    let page = block_on(e.list_queues(&n("ns"), None, 2, None, true)).unwrap();
    let names: Vec<_> = page.queues.iter().map(|q| q.name.as_str()).collect();
    assert_eq!(names, ["b", "a"]);
    assert_eq!(page.queues[1].stats.as_ref().unwrap().messages, 1);
    let rest = block_on(e.list_queues(&n("ns"), None, 2, page.next_cursor.as_deref(), false));
    assert_eq!(rest.unwrap().queues[0].name, "c");
    assert!(matches!(
        block_on(e.delete_queue(&n("ns"), &n("a"), true)),
        Err(Error::QueueNotEmpty(_))
    ));
    assert_eq!(block_on(e.purge_queue(&n("ns"), &n("a"))).unwrap(), 1);
    assert!(pop_bodies(&e, "a", 1).is_empty());
    block_on(e.delete_queue(&n("ns"), &n("b"), true)).unwrap();
    create(&e, "b", QueueConfig::default());
    let page = block_on(e.list_queues(&n("ns"), None, 10, None, false)).unwrap();
    let names: Vec<_> = page.queues.iter().map(|q| q.name.as_str()).collect();
    assert_eq!(names, ["a", "c", "b"]);
    assert_eq!(page.next_cursor, None);
    let shrink = QueueConfig { partitions: 1, ..Default::default() };
    create(&e, "c", QueueConfig { partitions: 3, ..Default::default() });
    assert!(matches!(
        block_on(e.put_queue(&n("ns"), &n("c"), shrink)),
        Err(Error::PartitionsShrink { from: 3, to: 1 })
    ));
}

#[test]
fn a_zero_visibility_timeout_delivers_and_leaves_the_message_visible() {
    let e = engine();
    create(&e, "q", QueueConfig { visibility_timeout: 0, ..Default::default() });
    send(&e, "q", "x");
    let opts = ReceiveOptions { count: 1, visibility_timeout: None, partition: None };
    let first = block_on(e.receive(&n("ns"), &n("q"), opts)).unwrap();
    assert_eq!(first.len(), 1);
    e.env().advance(1);
    let second = block_on(e.receive(&n("ns"), &n("q"), opts)).unwrap();
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].receive_count, 2);
    let acked = block_on(e.ack(&n("ns"), &n("q"), &[second[0].receipt.unwrap()])).unwrap();
    assert_eq!(acked[0], Ok(()));
}

#[test]
fn exclusive_creation_has_one_winner_however_creators_interleave() {
    use crate::store::{FaultPlan, FaultyStore};
    for seed in 0..200 {
        let store = FaultyStore::new(MemoryStore::new(), FaultPlan::reorder_only(seed));
        let e = Engine::new(store, ManualEnv::new(T0, seed));
        let (ns, q) = (n("ns"), n("q"));
        let creators = (0..4).map(|_| e.create_queue(&ns, &q, QueueConfig::default()));
        let won = block_on(futures::future::join_all(creators));
        let winners = won.into_iter().map(Result::unwrap).filter(|w| *w).count();
        assert_eq!(winners, 1, "seed {seed}");
        assert!(block_on(e.get_queue(&n("ns"), &n("q"))).is_ok(), "seed {seed}");
        // Deleting makes the name free again for exactly one creator.
        block_on(e.delete_queue(&n("ns"), &n("q"), false)).unwrap();
        assert!(block_on(e.create_queue(&n("ns"), &n("q"), QueueConfig::default())).unwrap());
        assert!(!block_on(e.create_queue(&n("ns"), &n("q"), QueueConfig::default())).unwrap());
        block_on(e.purge_queue(&n("ns"), &n("q"))).unwrap();
        assert!(!block_on(e.create_queue(&n("ns"), &n("q"), QueueConfig::default())).unwrap());
    }
}

#[test]
fn exchanges_route_by_kind_once_per_queue() {
    let e = engine();
    let ns = n("ns");
    for q in ["a", "b", "c"] {
        create(&e, q, QueueConfig::default());
    }
    block_on(e.put_exchange(&ns, &n("t"), ExchangeKind::Topic)).unwrap();
    block_on(e.bind(&ns, &n("t"), &n("a"), "user.*")).unwrap();
    block_on(e.bind(&ns, &n("t"), &n("a"), "#")).unwrap(); // a second match: still one copy
    block_on(e.bind(&ns, &n("t"), &n("b"), "order.#")).unwrap();
    let routed = block_on(e.publish(&ns, &n("t"), "user.created", msg("u1"))).unwrap();
    let queues: Vec<&str> = routed.iter().map(|r| r.queue.as_str()).collect();
    assert_eq!(queues, ["a"]);
    assert!(routed.iter().all(|r| r.outcome.is_ok()));
    assert_eq!(pop_bodies(&e, "a", 5), ["u1"]);

    block_on(e.unbind(&ns, &n("t"), &n("a"), "#")).unwrap();
    block_on(e.unbind(&ns, &n("t"), &n("a"), "user.*")).unwrap();
    assert!(block_on(e.publish(&ns, &n("t"), "user.created", msg("u2"))).unwrap().is_empty());
    assert_eq!(block_on(e.publish(&ns, &n("t"), "order.x.y", msg("o1"))).unwrap().len(), 1);
    assert_eq!(pop_bodies(&e, "b", 5), ["o1"]);

    // Another kind under the same name is refused; the same kind is confirmed.
    let err = block_on(e.put_exchange(&ns, &n("t"), ExchangeKind::Direct)).unwrap_err();
    assert!(matches!(err, Error::ExchangeKindMismatch { .. }), "{err:?}");
    assert!(!block_on(e.put_exchange(&ns, &n("t"), ExchangeKind::Topic)).unwrap().1);

    // A re-created exchange starts with no bindings; the old log is deleted.
    assert!(e.store().keys().iter().any(|k| k.starts_with("ns//x/t/0/")));
    block_on(e.delete_exchange(&ns, &n("t"))).unwrap();
    assert!(!e.store().keys().iter().any(|k| k.starts_with("ns//x/t/0/")));
    assert!(matches!(
        block_on(e.publish(&ns, &n("t"), "order.x", msg("o2"))),
        Err(Error::ExchangeNotFound(_))
    ));
    block_on(e.put_exchange(&ns, &n("t"), ExchangeKind::Fanout)).unwrap();
    assert!(block_on(e.get_exchange(&ns, &n("t"))).unwrap().bindings.is_empty());
    block_on(e.bind(&ns, &n("t"), &n("c"), "")).unwrap();
    block_on(e.bind(&ns, &n("t"), &n("b"), "ignored")).unwrap();
    let routed = block_on(e.publish(&ns, &n("t"), "any", msg("f"))).unwrap();
    assert_eq!(routed.len(), 2);
    // Binding a missing queue is refused; a binding lives as long as its queue:
    // a purge keeps it, a delete ends it, even once the name is created again.
    assert!(block_on(e.bind(&ns, &n("t"), &n("nope"), "")).is_err());
    block_on(e.purge_queue(&ns, &n("b"))).unwrap();
    block_on(e.delete_queue(&ns, &n("c"), false)).unwrap();
    let routed_to = |e: &Engine<MemoryStore, ManualEnv>| {
        let routed = block_on(e.publish(&ns, &n("t"), "any", msg("g"))).unwrap();
        routed.into_iter().map(|r| r.queue).collect::<Vec<_>>()
    };
    assert_eq!(routed_to(&e), ["b"]);
    create(&e, "c", QueueConfig::default());
    assert_eq!(routed_to(&e), ["b"], "a re-created queue starts unbound");
    let bound = block_on(e.get_exchange(&ns, &n("t"))).unwrap().bindings;
    assert_eq!(bound.iter().map(|b| b.queue.as_str()).collect::<Vec<_>>(), ["b"]);
    assert!(pop_bodies(&e, "c", 5).is_empty());
    block_on(e.bind(&ns, &n("t"), &n("c"), "")).unwrap();
    assert_eq!(routed_to(&e), ["b", "c"]);
}

#[test]
fn concurrent_binding_changes_are_all_kept() {
    use crate::store::{FaultPlan, FaultyStore};
    for seed in 0..100 {
        let store = FaultyStore::new(MemoryStore::new(), FaultPlan::reorder_only(seed));
        let e = Engine::new(store, ManualEnv::new(T0, seed));
        let (ns, x) = (n("ns"), n("x"));
        let queues: Vec<Name> = (0..6).map(|i| n(&format!("q{i}"))).collect();
        for q in &queues {
            block_on(e.put_queue(&ns, q, QueueConfig::default())).unwrap();
        }
        block_on(e.put_exchange(&ns, &x, ExchangeKind::Direct)).unwrap();
        let binds = queues.iter().map(|q| e.bind(&ns, &x, q, "k"));
        block_on(futures::future::join_all(binds)).into_iter().for_each(|r| r.unwrap());
        let info = block_on(e.get_exchange(&ns, &x)).unwrap();
        assert_eq!(info.bindings.len(), 6, "seed {seed}");
        // A retried publish with one idempotency key stores one copy per queue.
        let m = NewMessage { idempotency_key: Some("once".into()), ..msg("m") };
        for _ in 0..2 {
            let routed = block_on(e.publish(&ns, &x, "k", m.clone())).unwrap();
            assert_eq!(routed.len(), 6, "seed {seed}");
        }
        for q in &queues {
            assert_eq!(block_on(e.pop(&ns, q, 5)).unwrap().len(), 1, "seed {seed}");
        }
    }
}

#[test]
fn delayed_counts_from_send_to_first_delivery_expiry_or_delete() {
    let e = engine();
    create(&e, "q", QueueConfig::default());
    let delayed = |e: &Engine<MemoryStore, ManualEnv>| {
        block_on(e.get_queue(&n("ns"), &n("q"))).unwrap().stats.unwrap().delayed
    };
    let later = |secs: u64, body: &str| NewMessage { delay: Some(secs), ..msg(body) };
    // Expires (after 3 s) before it would become visible (after 5 s).
    let ttl = NewMessage { delay: Some(5), ttl: Some(3), ..msg("expires") };
    let sent = block_on(e.send(&n("ns"), &n("q"), vec![later(5, "a"), later(5, "b"), ttl]));
    let ids: Vec<_> = sent.unwrap().into_iter().map(|s| s.unwrap().id).collect();
    send(&e, "q", "now");
    assert_eq!(delayed(&e), 3);
    assert_eq!(pop_bodies(&e, "q", 5), ["now"]);
    assert_eq!(delayed(&e), 3, "a look at a still hidden message changes nothing");
    block_on(e.delete_message(&n("ns"), &n("q"), ids[1])).unwrap();
    assert_eq!(delayed(&e), 2);
    e.env().advance(6_000);
    let got = receive(&e, "q", 30);
    assert_eq!(got.iter().map(|m| &m.body[..]).collect::<Vec<_>>(), [b"a"], "the other expired");
    assert_eq!(delayed(&e), 0, "delivered, deleted or expired");
    // A nack makes a message invisible again, but it is not "delayed".
    let m = receive(&e, "q", 30);
    assert!(m.is_empty());
    e.env().advance(40_000);
    let again = receive(&e, "q", 30);
    assert!(!again.is_empty());
    assert_eq!(delayed(&e), 0, "redeliveries are not counted again");
}

#[test]
fn a_stale_backlog_hint_costs_a_writer_one_retry_and_loses_nothing() {
    use std::sync::Arc;
    let store = Arc::new(MemoryStore::new());
    let hinted = Engine::new(store.clone(), ManualEnv::new(T0, 7));
    let other = Engine::new(store.clone(), ManualEnv::new(T0, 8));
    let (ns, q) = (n("ns"), n("q"));
    block_on(hinted.put_queue(&ns, &q, QueueConfig::default())).unwrap();
    let batch: Vec<NewMessage> = (0..1000).map(|i| msg(&i.to_string())).collect();
    for _ in 0..3 {
        assert!(block_on(hinted.send(&ns, &q, batch.clone())).unwrap().iter().all(|r| r.is_ok()));
    }
    let pop = |e: &Engine<Arc<MemoryStore>, ManualEnv>, count| {
        block_on(e.pop(&ns, &q, count)).unwrap().into_iter().map(|m| m.body).collect::<Vec<_>>()
    };
    // The first pop reads a backlog of 3000 and remembers it; the next ones skip
    // the check (2 store calls fewer each).
    assert_eq!(pop(&hinted, 1), [Bytes::from("0")]);
    // Another engine drains the ring behind the hinted one's back.
    let mut drained = 1;
    while drained < 3000 {
        drained += pop(&other, 100).len();
    }
    // The hint is wrong now: the ticket lands past the tail, the take reports
    // empty, and the hint is dropped.
    assert!(pop(&hinted, 1).is_empty());
    // The writer of that slot retries on the next ticket; nothing is lost.
    let sent = block_on(hinted.send(&ns, &q, vec![msg("after")])).unwrap().remove(0).unwrap();
    assert_eq!(sent.id.slot(), 3002, "ticket 3001 was given up, the writer took the next");
    assert_eq!(pop(&hinted, 1), [Bytes::from("after")]);
    let stats = block_on(hinted.get_queue(&ns, &q)).unwrap().stats.unwrap();
    assert_eq!(stats.messages, 0);
    // The given-up slot's commit counter outlived the slot until its writer came;
    // the writer took it away with what it wrote.
    let given_up = slot::Slot::new(&block_on(hinted.queue(&ns, &q)).unwrap().keys.ring(0), 3001);
    let commit = given_up.keys.commit();
    let slot_prefix = commit.trim_end_matches('s');
    let left: Vec<String> =
        store.keys().into_iter().filter(|k| k.starts_with(slot_prefix)).collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn scans_leave_slots_being_worked_on_alone_and_recover_dead_takers() {
    use super::slot::Claim;
    let e = engine();
    create(&e, "q", QueueConfig::default());
    send(&e, "q", "a");
    send(&e, "q", "b");
    let queue = block_on(e.queue(&n("ns"), &n("q"))).unwrap();
    let ring = queue.keys.ring(0);
    let seen = |slot: &slot::Slot| block_on(e.store.get(&slot.keys.seen())).unwrap();
    // Consumer A took slot 1 and claimed it for a pop; consumer B took slot 2 and
    // died before claiming it. Neither wrote the slot's state.
    let a = block_on(e.take(&ring, T0)).unwrap().unwrap();
    let hold = Claim::Live { until: T0 + 30_000, lease: false };
    assert!(matches!(block_on(e.claim_first(&a, hold, T0)).unwrap(), claim::Claimed::Won { .. }));
    let b = block_on(e.take(&ring, T0)).unwrap().unwrap();
    // The head is dry, so every pop scans: A's slot is at work (no write), B's is
    // stamped as first seen undecided.
    assert!(pop_bodies(&e, "q", 1).is_empty());
    assert_eq!(seen(&a), None, "a slot whose taker holds claim 0 is not stamped");
    assert!(seen(&b).is_some());
    // GRACE after the stamp, B's slot is delivered in its consumer's stead.
    e.env().advance(ring::GRACE);
    assert_eq!(pop_bodies(&e, "q", 2), ["b"]);
    // A's hold runs out (A died): its slot is due at once, with no stamp.
    e.env().advance(30_000 - ring::GRACE);
    assert_eq!(pop_bodies(&e, "q", 2), ["a"]);
    assert_eq!(seen(&a), None);
    let stats = block_on(e.get_queue(&n("ns"), &n("q"))).unwrap().stats.unwrap();
    assert_eq!(stats.messages, 0);
}

#[test]
fn a_slot_whose_taker_lost_to_a_claimant_that_died_is_delivered_again() {
    use super::slot::Claim;
    let e = engine();
    create(&e, "q", QueueConfig::default());
    send(&e, "q", "a");
    send(&e, "q", "b");
    let queue = block_on(e.queue(&n("ns"), &n("q"))).unwrap();
    let ring = queue.keys.ring(0);
    // Found in the simulation (seed 675346 of receive mode): taker A of slot 1
    // stalled past its lease; a scan's claimant B took claim 1 and died after
    // writing its intent; A's check saw it and abandoned claim 0, then failed
    // before writing the slot's state. Nobody wrote `z`.
    let a = block_on(e.take(&ring, T0)).unwrap().unwrap();
    let lease = Claim::Live { until: T0 + 1_000, lease: true };
    block_on(e.store.set(&a.keys.claim(0), &slot::encode(&lease))).unwrap();
    block_on(e.store.increment(&a.keys.claims(), 1)).unwrap();
    let b = Claim::Live { until: T0 + 3_000, lease: true };
    block_on(e.store.set(&a.keys.claim(1), &slot::encode(&b))).unwrap();
    block_on(e.store.set(&a.keys.claim(0), &slot::encode(&Claim::Abandoned))).unwrap();
    // While B's intent holds, the message is not handed out; then it is, and
    // the queue drains to the last key (the mark passes slot 1).
    e.env().advance(2_000);
    assert_eq!(pop_bodies(&e, "q", 2), ["b"]);
    e.env().advance(1_000);
    assert_eq!(pop_bodies(&e, "q", 2), ["a"]);
    assert!(pop_bodies(&e, "q", 1).is_empty());
    assert_eq!(block_on(e.low(&ring)).unwrap(), 3);
    assert!(slot_keys(e.store()).is_empty(), "left behind: {:?}", slot_keys(e.store()));
}

#[test]
fn a_mark_moved_back_onto_swept_slots_catches_up_without_waiting_grace() {
    let e = engine();
    create(&e, "q", QueueConfig::default());
    let queue = block_on(e.queue(&n("ns"), &n("q"))).unwrap();
    let ring = queue.keys.ring(0);
    for i in 0..40 {
        send(&e, "q", &i.to_string());
    }
    assert_eq!(pop_bodies(&e, "q", 40).len(), 40);
    assert_eq!(block_on(e.low(&ring)).unwrap(), 41, "in-order pops sweep as they go");
    // A sweep that read the mark before the last finishes writes it back onto
    // slots 38-40, whose keys are all gone.
    block_on(e.store.set(&ring.low(), &slot::encode(&38u64))).unwrap();
    for i in 40..80 {
        send(&e, "q", &i.to_string());
    }
    let bodies: Vec<String> = (0..80).flat_map(|_| pop_bodies(&e, "q", 1)).collect();
    let expected: Vec<String> = (40..80).map(|i| i.to_string()).collect();
    assert_eq!(bodies, expected, "each message once, in order");
    // Empty pops scan at the mark: the clock has not moved, yet the mark is past
    // the head again.
    assert_eq!(block_on(e.low(&ring)).unwrap(), 81);
    // Deciding slots 38-40 again re-created their commit counters; they were
    // listed, and go with the first scan GRACE later.
    assert_eq!(slot_keys(e.store()).len(), 3, "{:?}", slot_keys(e.store()));
    e.env().advance(ring::GRACE);
    assert!(pop_bodies(&e, "q", 1).is_empty());
    assert!(slot_keys(e.store()).is_empty(), "left behind: {:?}", slot_keys(e.store()));
    assert_eq!(block_on(e.store().get(&ring.fences())).unwrap(), None);
}

#[test]
fn the_fence_of_a_writer_that_died_after_its_ticket_goes_after_grace() {
    let e = engine();
    create(&e, "q", QueueConfig::default());
    let ring = block_on(e.queue(&n("ns"), &n("q"))).unwrap().keys.ring(0);
    // A writer takes ticket 1 and dies.
    assert_eq!(block_on(e.store().increment(&ring.tail(), 1)).unwrap(), 1);
    // The first look stamps the slot; GRACE later a consumer fences it (HOLDER)
    // and decides it dead. The counter must stay for now: a writer that is only
    // slow still has to find the fence.
    assert!(pop_bodies(&e, "q", 1).is_empty());
    e.env().advance(ring::GRACE);
    assert!(pop_bodies(&e, "q", 1).is_empty());
    let queue = block_on(e.queue(&n("ns"), &n("q"))).unwrap();
    let commit = queue.keys.ring(0).slot(1).commit();
    assert_eq!(slot_keys(e.store()), std::slice::from_ref(&commit));
    assert_eq!(block_on(e.store().increment(&commit, 0)).unwrap(), slot::HOLDER);
    // Before GRACE has passed again, a scan keeps it; after, it goes.
    e.env().advance(ring::GRACE - 1);
    assert!(pop_bodies(&e, "q", 1).is_empty());
    assert_eq!(slot_keys(e.store()), [commit]);
    e.env().advance(1);
    assert!(pop_bodies(&e, "q", 1).is_empty());
    assert!(slot_keys(e.store()).is_empty(), "left behind: {:?}", slot_keys(e.store()));
    // The queue goes on as before.
    send(&e, "q", "a");
    assert_eq!(pop_bodies(&e, "q", 1), ["a"]);
}

/// A memory store that runs a hook once, just before the first `set` or
/// `increment` of one key (to land another host's calls between two calls of the
/// engine's own), and can then fail that call, before or after it takes effect.
#[derive(Default)]
struct Intercept {
    inner: std::sync::Arc<MemoryStore>,
    hook: std::sync::Mutex<Option<(String, Hook)>>,
}

type Hook = Box<dyn FnOnce(&std::sync::Arc<MemoryStore>) -> Then + Send>;

/// An engine over an [`Intercept`] store, with queue `ns/q` created, and that
/// queue's partition 0.
fn intercepted() -> (Engine<Intercept, ManualEnv>, Name, Name, keys::RingKeys) {
    let e = Engine::new(Intercept::default(), ManualEnv::new(T0, 7));
    let (ns, q) = (n("ns"), n("q"));
    block_on(e.put_queue(&ns, &q, QueueConfig::default())).unwrap();
    let ring = block_on(e.queue(&ns, &q)).unwrap().keys.ring(0);
    (e, ns, q, ring)
}

/// What the intercepted call does once its hook has run.
enum Then {
    Proceed,
    FailBefore,
    FailAfter,
}

impl Intercept {
    /// Runs `hook` just before the first write to `key`.
    fn before(
        &self,
        key: String,
        hook: impl FnOnce(&std::sync::Arc<MemoryStore>) + Send + 'static,
    ) {
        self.on(key, move |s| {
            hook(s);
            Then::Proceed
        });
    }

    /// Runs `hook`, then fails the first write to `key`; `after`: once it has
    /// taken effect.
    fn fail(
        &self,
        key: String,
        after: bool,
        hook: impl FnOnce(&std::sync::Arc<MemoryStore>) + Send + 'static,
    ) {
        self.on(key, move |s| {
            hook(s);
            if after {
                Then::FailAfter
            } else {
                Then::FailBefore
            }
        });
    }

    fn on(
        &self,
        key: String,
        hook: impl FnOnce(&std::sync::Arc<MemoryStore>) -> Then + Send + 'static,
    ) {
        *self.hook.lock().unwrap() = Some((key, Box::new(hook)));
    }

    /// `write` (a call on `inner`) to `key`, intercepted if it is the hook's.
    fn write<T>(
        &self,
        key: &str,
        write: impl FnOnce() -> StoreResult<T>,
    ) -> std::future::Ready<StoreResult<T>> {
        let hook = self.hook.lock().unwrap().take_if(|(k, _)| k == key);
        let then = hook.map_or(Then::Proceed, |(_, hook)| hook(&self.inner));
        let injected = || Err(crate::store::StoreError("injected".into()));
        std::future::ready(match then {
            Then::Proceed => write(),
            Then::FailBefore => injected(),
            Then::FailAfter => {
                write().expect("the intercepted write");
                injected()
            }
        })
    }
}

impl Store for Intercept {
    fn get(&self, key: &str) -> impl Future<Output = StoreResult<Option<Vec<u8>>>> + Send {
        self.inner.get(key)
    }
    fn get_many(
        &self,
        keys: &[String],
    ) -> impl Future<Output = StoreResult<Vec<Option<Vec<u8>>>>> + Send {
        self.inner.get_many(keys)
    }
    fn set(&self, key: &str, value: &[u8]) -> impl Future<Output = StoreResult<()>> + Send {
        use futures::FutureExt;
        self.write(key, || self.inner.set(key, value).now_or_never().unwrap())
    }
    fn delete(&self, key: &str) -> impl Future<Output = StoreResult<()>> + Send {
        self.inner.delete(key)
    }
    fn delete_many(&self, keys: &[String]) -> impl Future<Output = StoreResult<()>> + Send {
        self.inner.delete_many(keys)
    }
    fn increment(&self, key: &str, delta: i64) -> impl Future<Output = StoreResult<i64>> + Send {
        use futures::FutureExt;
        self.write(key, || self.inner.increment(key, delta).now_or_never().unwrap())
    }
}

#[test]
fn a_stamp_that_lands_after_its_slot_was_claimed_or_swept_is_taken_back() {
    use super::slot::{encode, Claim};
    use futures::FutureExt;
    for swept in [false, true] {
        let (e, ns, q, ring) = intercepted();
        block_on(e.send(&ns, &q, vec![msg("a")])).unwrap();
        // A consumer took slot 1 and has not claimed it yet; the head is dry, so
        // a pop scans and finds the slot undecided. Before its stamp lands, the
        // taker claims the slot — or finishes it at the mark: the mark moves,
        // then the slot's keys go.
        let slot = block_on(e.take(&ring, T0)).unwrap().unwrap();
        let (claim, record, low) = (slot.keys.claim(0), slot.keys.record(), ring.low());
        e.store.before(slot.keys.seen(), move |s| {
            let done = if swept {
                s.set(&low, &encode(&2u64))
                    .now_or_never()
                    .and_then(|_| s.delete(&record).now_or_never())
            } else {
                let hold = Claim::Live { until: T0 + 30_000, lease: false };
                s.set(&claim, &encode(&hold)).now_or_never()
            };
            done.unwrap().unwrap();
        });
        assert!(block_on(e.pop(&ns, &q, 1)).unwrap().is_empty());
        let stamp = block_on(e.store.get(&slot.keys.seen())).unwrap();
        assert_eq!(stamp, None, "swept: {swept}");
    }
}

#[test]
fn a_stamp_left_below_the_mark_goes_with_the_next_slot_finished_at_the_mark() {
    let e = engine();
    create(&e, "q", QueueConfig::default());
    send(&e, "q", "a");
    send(&e, "q", "b");
    assert_eq!(block_on(e.pop(&n("ns"), &n("q"), 1)).unwrap().len(), 1);
    // Slot 1 was finished at the mark and the mark moved past it; a scan's stamp
    // that was on its way lands only now.
    let ring = block_on(e.queue(&n("ns"), &n("q"))).unwrap().keys.ring(0);
    let late = slot::Slot::new(&ring, 1).keys.seen();
    block_on(e.store.set(&late, &slot::encode(&T0))).unwrap();
    assert_eq!(block_on(e.store.get(&ring.low())).unwrap(), Some(slot::encode(&2u64)));
    assert_eq!(block_on(e.pop(&n("ns"), &n("q"), 1)).unwrap().len(), 1);
    assert_eq!(block_on(e.store.get(&late)).unwrap(), None);
}

#[test]
fn a_sweep_whose_host_dies_around_the_mark_move_leaves_nothing_below_the_mark() {
    // `moved`: the host dies right after moving the mark, else right before.
    for moved in [false, true] {
        let (e, ns, q, ring) = intercepted();
        block_on(e.send(&ns, &q, vec![msg("a"), msg("b")])).unwrap();
        let opts = ReceiveOptions { count: 2, visibility_timeout: Some(30), partition: None };
        let leased = block_on(e.receive(&ns, &q, opts)).unwrap();
        // Acked newest first: slot 2 is finished away from the mark, slot 1 at
        // it, so the mark stops at slot 2 for a scan to sweep.
        for m in leased.iter().rev() {
            assert!(block_on(e.ack(&ns, &q, &[m.receipt.unwrap()])).unwrap()[0].is_ok());
        }
        let left = slot_keys(&e.store.inner);
        assert!(!left.is_empty() && left.iter().all(|k| k.starts_with("ns/q/0/0/2/")), "{left:?}");
        // The next scan sweeps slot 2, and its host dies at the mark move.
        e.store.fail(ring.low(), moved, |_| {});
        assert!(block_on(e.pop(&ns, &q, 1)).is_err());
        let mark = if moved { 3u64 } else { 2 };
        assert_eq!(block_on(e.store.get(&ring.low())).unwrap(), Some(slot::encode(&mark)));
        // Nothing is left below the mark; a slot left at it is decided again by
        // later scans, and every key they make for it goes too.
        for _ in 0..4 {
            e.env().advance(ring::GRACE);
            assert!(block_on(e.pop(&ns, &q, 1)).unwrap().is_empty());
        }
        assert_eq!(block_on(e.store.get(&ring.low())).unwrap(), Some(slot::encode(&3u64)));
        assert_eq!(slot_keys(&e.store.inner), Vec::<String>::new(), "moved: {moved}");
    }
}

#[test]
fn a_head_stamp_that_lands_after_its_slot_was_taken_is_taken_back() {
    use super::slot::encode;
    use futures::FutureExt;
    for taken in [false, true] {
        let (e, ns, q, ring) = intercepted();
        // A writer holds ticket 1 and has not committed: a pop peeks at slot 1,
        // finds it undecided and stamps it. Before the stamp lands, another
        // consumer takes the slot, finishes it and sweeps it (the mark moves).
        block_on(e.store.increment(&ring.tail(), 1)).unwrap();
        let slot = slot::Slot::new(&ring, 1);
        if taken {
            let (head, low) = (ring.head(), ring.low());
            e.store.before(slot.keys.seen(), move |s| {
                s.increment(&head, 1).now_or_never().unwrap().unwrap();
                s.set(&low, &encode(&2u64)).now_or_never().unwrap().unwrap();
            });
        }
        assert!(block_on(e.pop(&ns, &q, 1)).unwrap().is_empty());
        let stamp = block_on(e.store.get(&slot.keys.seen())).unwrap();
        // Not taken, the stamp stays: it times the writer's grace period.
        assert_eq!(stamp.is_some(), !taken, "taken: {taken}");
    }
}

#[test]
fn a_queue_kept_with_another_protocol_is_refused_and_left_alone() {
    let e = engine();
    create(&e, "q", QueueConfig::default());
    send(&e, "q", "a");
    let key = keys::queue_meta(&n("ns"), &n("q"));
    let stored = block_on(e.store.get(&key)).unwrap().unwrap();
    let mut meta: serde_json::Value = serde_json::from_slice(&stored).unwrap();
    assert_eq!(meta["protocol"], 1);
    // Written before the field existed: protocol 1, served as ever.
    meta.as_object_mut().unwrap().remove("protocol");
    block_on(e.store.set(&key, &serde_json::to_vec(&meta).unwrap())).unwrap();
    assert_eq!(block_on(e.get_queue(&n("ns"), &n("q"))).unwrap().stats.unwrap().messages, 1);
    // A host of a later version keeps it with protocol 2: every operation refuses
    // it, and neither the metadata nor the message changes.
    meta["protocol"] = 2.into();
    let newer = serde_json::to_vec(&meta).unwrap();
    block_on(e.store.set(&key, &newer)).unwrap();
    let refused = |r: Result<()>| {
        assert!(matches!(r, Err(Error::ProtocolMismatch { found: 2, .. })), "{r:?}");
    };
    refused(block_on(e.pop(&n("ns"), &n("q"), 1)).map(drop));
    refused(block_on(e.send(&n("ns"), &n("q"), vec![msg("b")])).map(drop));
    refused(block_on(e.get_queue(&n("ns"), &n("q"))).map(drop));
    refused(block_on(e.put_queue(&n("ns"), &n("q"), QueueConfig::default())).map(drop));
    refused(block_on(e.purge_queue(&n("ns"), &n("q"))).map(drop));
    refused(block_on(e.delete_queue(&n("ns"), &n("q"), false)).map(drop));
    assert_eq!(block_on(e.store.get(&key)).unwrap().unwrap(), newer);
    meta["protocol"] = 1.into();
    block_on(e.store.set(&key, &serde_json::to_vec(&meta).unwrap())).unwrap();
    assert_eq!(pop_bodies(&e, "q", 1), ["a"]);
}

#[test]
fn a_taker_that_reaches_a_swept_slot_takes_back_the_counter_it_re_created() {
    let e = engine();
    create(&e, "q", QueueConfig::default());
    send(&e, "q", "a");
    // Slot 1 is finished at the mark and swept: none of its keys is left.
    assert_eq!(pop_bodies(&e, "q", 1), ["a"]);
    assert!(slot_keys(e.store()).is_empty(), "{:?}", slot_keys(e.store()));
    // A taker that got ticket 1 and stalled before deciding it arrives only now:
    // its increment re-creates the commit counter, and it finds itself first.
    let queue = block_on(e.queue(&n("ns"), &n("q"))).unwrap();
    let slot = slot::Slot::new(&queue.keys.ring(0), 1);
    let s = block_on(e.store().increment(&slot.keys.commit(), slot::HOLDER)).unwrap();
    assert_eq!(s, slot::HOLDER);
    block_on(e.dead(&slot, super::ring::Fence::Created)).unwrap();
    assert!(slot_keys(e.store()).is_empty(), "left behind: {:?}", slot_keys(e.store()));
    assert_eq!(block_on(e.low(&queue.keys.ring(0))).unwrap(), 2, "the mark stays");
}

#[test]
fn a_writer_whose_store_fails_before_committing_leaves_nothing_behind() {
    use super::ring::GRACE;
    use futures::FutureExt;
    // (the key that fails, after it took effect, a consumer reached the slot first)
    let cases = [("m", false, false), ("m", true, false), ("m", false, true), ("s", false, false)];
    for (suffix, after, fenced) in cases {
        let case = format!("{suffix} fails, after: {after}, fenced first: {fenced}");
        let env = ManualEnv::new(T0, 7);
        let e = Engine::new(Intercept::default(), env.clone());
        let (ns, q) = (n("ns"), n("q"));
        block_on(e.put_queue(&ns, &q, QueueConfig::default())).unwrap();
        let slot = slot::Slot::new(&block_on(e.queue(&ns, &q)).unwrap().keys.ring(0), 1);
        let key = if suffix == "m" { slot.keys.record() } else { slot.keys.commit() };
        e.store.fail(key, after, move |inner| {
            if fenced {
                // Another host finds the slot undecided, and again after GRACE:
                // it takes the ticket and decides the slot dead.
                let other = Engine::new(inner.clone(), env.clone());
                assert!(other
                    .pop(&n("ns"), &n("q"), 1)
                    .now_or_never()
                    .unwrap()
                    .unwrap()
                    .is_empty());
                env.advance(GRACE);
                assert!(other
                    .pop(&n("ns"), &n("q"), 1)
                    .now_or_never()
                    .unwrap()
                    .unwrap()
                    .is_empty());
            }
        });
        assert!(block_on(e.send(&ns, &q, vec![msg("lost")])).unwrap()[0].is_err(), "{case}");
        // The slot was given up: a consumer passes it at once, and nothing of it
        // stays, its commit counter included.
        block_on(e.send(&ns, &q, vec![msg("next")])).unwrap()[0].as_ref().unwrap();
        assert_eq!(
            block_on(e.pop(&ns, &q, 5)).unwrap().iter().map(|m| &m.body[..]).collect::<Vec<_>>(),
            [b"next"],
            "{case}"
        );
        let left = slot_keys(&e.store.inner);
        assert!(left.is_empty(), "{case}: left behind {left:?}");
    }
}

#[test]
fn a_commit_that_landed_before_its_call_failed_is_a_successful_send() {
    let (e, ns, q, ring) = intercepted();
    let slot = slot::Slot::new(&ring, 1);
    e.store.fail(slot.keys.commit(), true, |_| {});
    let sent = block_on(e.send(&ns, &q, vec![msg("a")])).unwrap().remove(0).unwrap();
    let got = block_on(e.pop(&ns, &q, 5)).unwrap();
    assert_eq!(got.iter().map(|m| (m.id, &m.body[..])).collect::<Vec<_>>(), [(sent.id, &b"a"[..])]);
}

#[test]
fn answers_stop_taking_messages_once_their_bodies_reach_the_limit() {
    let e = engine();
    create(&e, "q", QueueConfig::default());
    // Bodies of the largest size: two reach the limit.
    let big = |c: char| c.to_string().repeat(crate::model::MAX_BODY_LEN);
    assert_eq!(MAX_ANSWER_BYTES.div_ceil(crate::model::MAX_BODY_LEN), 2);
    for c in ['a', 'b', 'c', 'd', 'e'] {
        send(&e, "q", &big(c));
    }
    let first = |bodies: Vec<String>| bodies.iter().map(|b| b.chars().next()).collect::<Vec<_>>();
    let page = |after| {
        let opts = BrowseOptions { after, limit: 10, order: Order::Ascending, partition: None };
        block_on(e.browse(&n("ns"), &n("q"), opts)).unwrap()
    };
    let browsed = page(None);
    assert_eq!(browsed.messages.len(), 2);
    assert_eq!(browsed.next_after, Some(browsed.messages[1].id), "the page goes on after it");
    assert_eq!(page(browsed.next_after).messages.len(), 2);
    // Receive and pop leave what they did not take in the queue, in order.
    let leased: Vec<String> = receive(&e, "q", 30)
        .into_iter()
        .map(|m| String::from_utf8(m.body.to_vec()).unwrap())
        .collect();
    assert_eq!(first(leased), [Some('a'), Some('b')]);
    assert_eq!(first(pop_bodies(&e, "q", 10)), [Some('c'), Some('d')]);
    assert_eq!(first(pop_bodies(&e, "q", 10)), [Some('e')]);
}

#[test]
fn delete_if_empty_believes_the_rings_over_a_count_that_drifted() {
    let e = engine();
    create(&e, "q", QueueConfig::default());
    let queue = block_on(e.queue(&n("ns"), &n("q"))).unwrap();
    // A host died between counting a message in and pushing it: counted, never there.
    block_on(e.store().increment(&queue.keys.held(), slot::held(5))).unwrap();
    let delete = || block_on(e.delete_queue(&n("ns"), &n("q"), true));
    // Messages ahead of the head, then leased behind it: not empty.
    send(&e, "q", "x");
    send(&e, "q", "y");
    assert!(matches!(delete(), Err(Error::QueueNotEmpty(_))));
    let leased = receive(&e, "q", 30);
    assert!(matches!(delete(), Err(Error::QueueNotEmpty(_))));
    // Acked out of order: the second finishes away from the low-water mark,
    // the first at it; the mark then stops below the second until a sweep.
    let ack = |m: &Message| block_on(e.ack(&n("ns"), &n("q"), &[m.receipt.unwrap()])).unwrap();
    ack(&leased[1]);
    assert!(matches!(delete(), Err(Error::QueueNotEmpty(_))));
    ack(&leased[0]);
    let stats = block_on(e.get_queue(&n("ns"), &n("q"))).unwrap().stats.unwrap();
    assert_eq!(stats.messages, 1, "the drift stays in the count");
    delete().unwrap();
    assert!(slot_keys(e.store()).iter().all(|k| !k.ends_with("/z")), "the run was swept");
}
