//! Conformance suites: one per port, run against every implementation of it.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

pub mod repository;
pub mod secret_store;

/// Calls `$crate::$m!($make; case, …)` with every [`repository`] conformance case: the one
/// list of them.
#[doc(hidden)]
#[macro_export]
macro_rules! __with_repository_cases {
    ($m:ident, $make:expr) => {
        $crate::$m!($make; a_created_row_is_invisible_until_active, find_active_ignores_the_tenant_but_not_the_state, rows_are_tenant_scoped, names_are_unique_per_tenant_only, request_ids_are_unique_per_tenant_and_found_in_any_state, list_pages_through_active_rows_in_creation_order, delete_lifecycle, compensation_removes_only_creating_rows, claim_stale_takes_unfinished_rows_once_per_lease, concurrent_claims_never_take_the_same_row_twice, oauth_states_are_single_use, token_refresh_leases_and_outcomes, one_refresh_lease_among_concurrent_takers, expired_oauth_states_are_purged, an_install_is_bound_to_the_first_browser_only, quota_counts_are_per_tenant, api_keys_round_trip_and_revoke_once, a_send_key_is_claimed_once_and_keeps_its_outcome, expired_send_keys_are_reclaimed_and_purged, concurrent_claims_of_one_send_key_have_one_winner, a_send_whose_answer_was_lost_is_retaken_once, updates_are_conditional_and_record_staged_versions, workspace_events_and_status_filters, bots_are_recorded_and_learned_once, posted_messages_are_kept_per_connector, slack_event_ids_are_recorded_once, inbound_events_are_appended_once_in_tenant_order, the_outbox_gives_out_each_channel_in_order_once, the_outbox_paces_channels_with_one_shared_budget, immediate_sends_are_recorded_beside_queued_ones, concurrent_outbox_claims_take_each_message_once, a_429_in_two_channels_at_once_pauses_the_workspace, a_spent_budget_says_when_it_admits_again);
    };
}

/// Calls `$crate::$m!($make; case, …)` with every [`secret_store`] conformance case.
#[doc(hidden)]
#[macro_export]
macro_rules! __with_secret_store_cases {
    ($m:ident, $make:expr) => {
        $crate::$m!($make; put_get_delete_round_trip, deleting_a_missing_secret_succeeds, getting_a_missing_secret_is_not_found, each_name_keeps_its_own_value, a_staged_version_is_current_only_once_promoted, a_discarded_staged_version_is_never_promoted, staged_versions_are_listed_by_prefix_and_age, staging_needs_the_secret_and_dies_with_it);
    };
}

/// One `#[tokio::test]` per case of `$suite`.
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_tests {
    ($suite:ident, $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let (_guard, subject) = $make.await;
                $crate::conformance::$suite::$case(&subject).await;
            }
        )*
    };
}

/// Every case of `$suite`, one after another, each on a fresh subject. A failing case does
/// not hide the rest: each runs, says `ok` or `FAILED` (its panic message printed as it
/// happens), and the test then fails naming every case that failed.
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_sequence {
    ($suite:ident, $make:expr; $($case:ident),* $(,)?) => {
        {
            let mut failed: ::std::vec::Vec<&str> = ::std::vec::Vec::new();
            let mut passed = 0usize;
            $(
                let outcome = $crate::__private::futures::FutureExt::catch_unwind(
                    ::std::panic::AssertUnwindSafe(async {
                        let (_guard, subject) = $make.await;
                        $crate::conformance::$suite::$case(&subject).await;
                    }),
                )
                .await;
                match outcome {
                    Ok(()) => {
                        passed += 1;
                        eprintln!("conformance {} ... ok", stringify!($case));
                    }
                    Err(_) => {
                        eprintln!("conformance {} ... FAILED", stringify!($case));
                        failed.push(stringify!($case));
                    }
                }
            )*
            assert!(
                failed.is_empty(),
                "{} conformance case(s) failed ({passed} passed): {failed:?}",
                failed.len()
            );
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __repository_tests {
    ($make:expr; $($case:ident),* $(,)?) => {
        $crate::__conformance_tests!(repository, $make; $($case),*);
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __repository_sequence {
    ($make:expr; $($case:ident),* $(,)?) => {
        $crate::__conformance_sequence!(repository, $make; $($case),*);
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __secret_store_tests {
    ($make:expr; $($case:ident),* $(,)?) => {
        $crate::__conformance_tests!(secret_store, $make; $($case),*);
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __secret_store_sequence {
    ($make:expr; $($case:ident),* $(,)?) => {
        $crate::__conformance_sequence!(secret_store, $make; $($case),*);
    };
}

/// Generates one `#[tokio::test]` per [`repository`] conformance case. `$make` is an async
/// expression yielding `(guard, repository)`.
#[macro_export]
macro_rules! repository_conformance {
    ($make:expr) => {
        $crate::__with_repository_cases!(__repository_tests, $make);
    };
}

/// Runs every [`repository`] conformance case in turn, inside one test (for a server that is
/// a container the test started). `$make` as for [`repository_conformance!`].
#[macro_export]
macro_rules! repository_conformance_in_sequence {
    ($make:expr) => {
        $crate::__with_repository_cases!(__repository_sequence, $make);
    };
}

/// Generates one `#[tokio::test]` per [`secret_store`] conformance case. `$make` is an async
/// expression yielding `(guard, store)`.
#[macro_export]
macro_rules! secret_store_conformance {
    ($make:expr) => {
        $crate::__with_secret_store_cases!(__secret_store_tests, $make);
    };
}

/// Runs every [`secret_store`] conformance case in turn, inside one test.
#[macro_export]
macro_rules! secret_store_conformance_in_sequence {
    ($make:expr) => {
        $crate::__with_secret_store_cases!(__secret_store_sequence, $make);
    };
}
