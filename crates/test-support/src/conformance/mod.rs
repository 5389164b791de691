//! Conformance suites: one per port, run against every implementation of it.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

pub mod repository;
pub mod secret_store;

/// Generates one `#[tokio::test]` per [`repository`] conformance case. `$make` is an async
/// expression yielding `(guard, repository)`.
#[macro_export]
macro_rules! repository_conformance {
    ($make:expr) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn a_created_row_is_invisible_until_active() {
            let (_guard, repo) = $make.await;
            $crate::conformance::repository::a_created_row_is_invisible_until_active(&repo).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn find_active_ignores_the_tenant_but_not_the_state() {
            let (_guard, repo) = $make.await;
            $crate::conformance::repository::find_active_ignores_the_tenant_but_not_the_state(&repo).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn rows_are_tenant_scoped() {
            let (_guard, repo) = $make.await;
            $crate::conformance::repository::rows_are_tenant_scoped(&repo).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn names_are_unique_per_tenant_only() {
            let (_guard, repo) = $make.await;
            $crate::conformance::repository::names_are_unique_per_tenant_only(&repo).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn request_ids_are_unique_per_tenant_and_found_in_any_state() {
            let (_guard, repo) = $make.await;
            $crate::conformance::repository::request_ids_are_unique_per_tenant_and_found_in_any_state(&repo).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn list_pages_through_active_rows_in_creation_order() {
            let (_guard, repo) = $make.await;
            $crate::conformance::repository::list_pages_through_active_rows_in_creation_order(&repo).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn delete_lifecycle() {
            let (_guard, repo) = $make.await;
            $crate::conformance::repository::delete_lifecycle(&repo).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn compensation_removes_only_creating_rows() {
            let (_guard, repo) = $make.await;
            $crate::conformance::repository::compensation_removes_only_creating_rows(&repo).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn claim_stale_takes_unfinished_rows_once_per_lease() {
            let (_guard, repo) = $make.await;
            $crate::conformance::repository::claim_stale_takes_unfinished_rows_once_per_lease(&repo).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn concurrent_claims_never_take_the_same_row_twice() {
            let (_guard, repo) = $make.await;
            $crate::conformance::repository::concurrent_claims_never_take_the_same_row_twice(&repo).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn oauth_states_are_single_use() {
            let (_guard, repo) = $make.await;
            $crate::conformance::repository::oauth_states_are_single_use(&repo).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn token_refresh_leases_and_outcomes() {
            let (_guard, repo) = $make.await;
            $crate::conformance::repository::token_refresh_leases_and_outcomes(&repo).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn one_refresh_lease_among_concurrent_takers() {
            let (_guard, repo) = $make.await;
            $crate::conformance::repository::one_refresh_lease_among_concurrent_takers(&repo).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn expired_oauth_states_are_purged() {
            let (_guard, repo) = $make.await;
            $crate::conformance::repository::expired_oauth_states_are_purged(&repo).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn an_install_is_bound_to_the_first_browser_only() {
            let (_guard, repo) = $make.await;
            $crate::conformance::repository::an_install_is_bound_to_the_first_browser_only(&repo).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn quota_counts_are_per_tenant() {
            let (_guard, repo) = $make.await;
            $crate::conformance::repository::quota_counts_are_per_tenant(&repo).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn api_keys_round_trip_and_revoke_once() {
            let (_guard, repo) = $make.await;
            $crate::conformance::repository::api_keys_round_trip_and_revoke_once(&repo).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn a_send_key_is_claimed_once_and_keeps_its_outcome() {
            let (_guard, repo) = $make.await;
            $crate::conformance::repository::a_send_key_is_claimed_once_and_keeps_its_outcome(&repo).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn expired_send_keys_are_reclaimed_and_purged() {
            let (_guard, repo) = $make.await;
            $crate::conformance::repository::expired_send_keys_are_reclaimed_and_purged(&repo).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn concurrent_claims_of_one_send_key_have_one_winner() {
            let (_guard, repo) = $make.await;
            $crate::conformance::repository::concurrent_claims_of_one_send_key_have_one_winner(&repo).await;
        }
    };
}

/// Generates one `#[tokio::test]` per [`secret_store`] conformance case. `$make` is an async
/// expression yielding `(guard, store)`.
#[macro_export]
macro_rules! secret_store_conformance {
    ($make:expr) => {
        #[tokio::test]
        async fn put_get_delete_round_trip() {
            let (_guard, store) = $make.await;
            $crate::conformance::secret_store::put_get_delete_round_trip(&store).await;
        }
        #[tokio::test]
        async fn deleting_a_missing_secret_succeeds() {
            let (_guard, store) = $make.await;
            $crate::conformance::secret_store::deleting_a_missing_secret_succeeds(&store).await;
        }
        #[tokio::test]
        async fn getting_a_missing_secret_is_not_found() {
            let (_guard, store) = $make.await;
            $crate::conformance::secret_store::getting_a_missing_secret_is_not_found(&store).await;
        }
        #[tokio::test]
        async fn each_name_keeps_its_own_value() {
            let (_guard, store) = $make.await;
            $crate::conformance::secret_store::each_name_keeps_its_own_value(&store).await;
        }
    };
}
