//! The black-box HTTP conformance suite: every scenario runs against every host
//! over loopback with a real HTTP client, with the same expectations.
//!
//! - Scenarios live in `tests/conformance/*.rs`; each is
//!   `pub async fn name(c: &Client)` and sees only a base URL and a client.
//! - Hosts are the [`support::Target`]s listed in the `conformance!` call at the
//!   bottom: adding a host is one line there and a variant in `support`.
//! - Tests are named `<host>::<scenario>` (scenario names are unique), so
//!   `cargo test --test conformance native_redb::` runs one host.
//!
//! The contract checked here is `docs/api-v1.md`, and the dialects' specs
//! (`rest_queue.rs`, `memfifo.rs`, `monty.rs`, `queuey.rs`, `mounting.rs`).

mod support;

#[path = "conformance/auth.rs"]
mod auth;
#[path = "conformance/concurrency.rs"]
mod concurrency;
#[path = "conformance/errors.rs"]
mod errors;
#[path = "conformance/exchanges.rs"]
mod exchanges;
#[path = "conformance/leases.rs"]
mod leases;
#[path = "conformance/memfifo.rs"]
mod memfifo;
#[path = "conformance/messages.rs"]
mod messages;
#[path = "conformance/metrics.rs"]
mod metrics;
#[path = "conformance/monty.rs"]
mod monty;
#[path = "conformance/mounting.rs"]
mod mounting;
#[path = "conformance/ops.rs"]
mod ops;
#[path = "conformance/queues.rs"]
mod queues;
#[path = "conformance/queuey.rs"]
mod queuey;
#[path = "conformance/rest_queue.rs"]
mod rest_queue;
#[path = "conformance/web.rs"]
mod web;

/// One test module per host; one test per scenario in it.
macro_rules! for_host {
    ($host:ident, $target:expr, [$($module:ident :: $name:ident),* $(,)?]) => {
        mod $host {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    crate::support::run($target, |c| async move {
                        crate::$module::$name(&c).await
                    })
                    .await;
                }
            )*
        }
    };
}

/// Every scenario against every host.
macro_rules! conformance {
    (hosts: [$($host:ident => $target:expr),* $(,)?], scenarios: $scenarios:tt) => {
        $( for_host!($host, $target, $scenarios); )*
    };
}

conformance! {
    hosts: [
        native_memory => crate::support::Target::NativeMemory,
        native_redb => crate::support::Target::NativeRedb,
        native_redis => crate::support::Target::NativeRedis,
        wasm => crate::support::Target::Wasm,
    ],
    scenarios: [
        ops::healthz_and_heartbeat,
        queues::create_get_update,
        queues::list_paginates_with_prefix_and_details,
        queues::delete_if_empty,
        queues::purge_empties_the_queue,
        queues::routes_of_a_missing_queue_are_404,
        queues::partitions_only_grow,
        queues::dead_letter_queue_must_exist,
        messages::send_keeps_any_content_type,
        messages::binary_bodies_round_trip_byte_exact,
        messages::four_mib_is_the_limit,
        messages::answers_stop_at_eight_mib_of_bodies,
        messages::delay_hides_then_shows,
        messages::ttl_expires_messages,
        messages::idempotency_key_repeat_returns_the_first_id,
        messages::batch_mixes_text_and_base64,
        messages::batch_limits,
        messages::browse_pages_without_consuming,
        messages::get_put_delete_by_id,
        messages::partitions_route_messages,
        messages::head_answers_like_get_without_a_body,
        leases::pop_is_fifo_and_destructive,
        leases::pop_with_count_is_an_envelope,
        leases::receive_then_ack,
        leases::receive_many_and_ack_in_one_call,
        leases::nack_makes_visible_again,
        leases::expired_lease_is_redelivered_and_old_receipt_stale,
        leases::extend_keeps_the_lease,
        leases::receipt_batches_report_per_receipt,
        leases::dead_letter_after_max_receives,
        leases::long_poll_returns_a_message_sent_meanwhile,
        leases::long_poll_with_count_returns_an_envelope,
        errors::malformed_json_stores_nothing,
        errors::unknown_fields_are_refused,
        errors::wrong_types_and_out_of_range_values,
        errors::bad_names_name_the_rule,
        errors::oversized_bodies_are_413,
        errors::chunked_bodies_are_read_and_limited,
        errors::bad_header_values_store_nothing,
        errors::unknown_routes_are_404,
        errors::wrong_methods_are_405_with_allow,
        errors::bad_query_parameters,
        errors::bad_receipts_and_ids,
        errors::full_queue_is_507_and_keeps_what_it_holds,
        concurrency::producers_and_consumers_lose_and_duplicate_nothing,
        exchanges::direct_exchange_routes_by_key,
        exchanges::topic_and_fanout_exchanges,
        exchanges::publish_with_idempotency_key_stores_once_per_queue,
        exchanges::exchange_errors_store_nothing,
        rest_queue::rest_queue_create_push_pop_items_delete,
        rest_queue::rest_queue_missing_queues_are_404,
        rest_queue::rest_queue_names_are_any_text_rendered_with_repr,
        rest_queue::rest_queue_push_body_rules,
        rest_queue::rest_queue_safe_delete,
        rest_queue::rest_queue_redirects_405_404_and_docs,
        rest_queue::rest_queue_concurrent_creates_have_one_winner,
        memfifo::memfifo_create_get_list_delete,
        memfifo::memfifo_invalid_creates_are_400,
        memfifo::memfifo_submit_and_read_round_trip,
        memfifo::memfifo_client_id_limits_and_missing_queues,
        monty::monty_publish_and_consume_in_order,
        monty::monty_other_bindings_receive_publishes,
        monty::monty_bad_input_is_400_and_stores_nothing,
        queuey::queuey_queue_management,
        queuey::queuey_applications_and_keys,
        queuey::queuey_post_and_browse_messages,
        queuey::queuey_messages_by_id,
        mounting::messages_flow_across_route_sets,
        mounting::dialects_live_under_their_prefixes,
        metrics::metrics_show_queues_and_requests,
        web::pages_and_openapi_are_served_without_a_key,
    ]
}

// Hosts with an admin key configured (the hosts above run open).
conformance! {
    hosts: [
        native_keys => crate::support::Target::NativeKeys,
        wasm_keys => crate::support::Target::WasmKeys,
    ],
    scenarios: [
        auth::every_route_refuses_bad_keys_and_serves_the_right_one,
        auth::malformed_authorization_is_401,
        auth::public_queues_are_readable_without_a_key,
        auth::keys_are_shown_once_scoped_and_revocable,
        auth::dialects_under_keys,
        metrics::metrics_need_the_admin_right,
        web::pages_and_openapi_are_served_without_a_key,
    ]
}
