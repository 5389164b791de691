//! The [`ConnectorRepository`] conformance suite: every implementation must pass each of these.
//!
//! Run it with [`repository_conformance!`](crate::repository_conformance), giving an async
//! expression that yields `(guard, repository)`; the guard (a temporary database, say) is kept
//! alive for the test's duration.

use std::time::Duration;

use connector_domain::{
    AuthStatus, BotIdentity, ChannelId, ChannelName, ConnectorId, ConnectorName, ConnectorState,
    RequestId, TenantId, WorkspaceId,
};
use connector_ports::{
    ApiKeyRecord, ApiKeyStore, ConnectorRepository, ConnectorUpdate, NewConnector, OAuthStateStore,
    PendingInstall, RefreshOutcome, RepositoryError, StatusCount,
};

fn tenant(s: &str) -> TenantId {
    TenantId::parse("tenant_id", s).unwrap()
}

/// A connector to insert.
pub fn new(tenant_id: &str, name: &str, request_id: Option<&str>) -> NewConnector {
    NewConnector {
        id: ConnectorId::new_v7(),
        tenant_id: tenant(tenant_id),
        name: ConnectorName::parse("name", name).unwrap(),
        workspace_id: WorkspaceId::new("T0001"),
        default_channel_id: ChannelId::new("C0000ALERT"),
        default_channel_name: ChannelName::new("alerts"),
        request_id: request_id
            .map(|r| RequestId::parse_optional("request_id", r).unwrap().unwrap()),
        token_expires_at: None,
        bot: Some(bot("U0BOT", Some(APP))),
    }
}

/// The app every connector of [`new`] belongs to.
pub const APP: &str = "A0APP";

/// A bot of `app`.
pub fn bot(bot_user_id: &str, app: Option<&str>) -> BotIdentity {
    BotIdentity {
        bot_user_id: bot_user_id.into(),
        app_id: app.map(str::to_owned),
    }
}

async fn create_active<R: ConnectorRepository + ?Sized>(repo: &R, n: &NewConnector) {
    repo.insert_creating(n).await.unwrap();
    repo.mark_active(n.id).await.unwrap().unwrap();
}

/// Conformance case `a_created_row_is_invisible_until_active`.
pub async fn a_created_row_is_invisible_until_active<R: ConnectorRepository + Clone + 'static>(
    repo: &R,
) {
    let n = new("acme", "prod", None);
    let row = repo.insert_creating(&n).await.unwrap();
    assert_eq!(row.state, ConnectorState::Creating);
    assert_eq!(row.id, n.id);
    assert!(repo.get_active(&n.tenant_id, n.id).await.unwrap().is_none());

    let active = repo.mark_active(n.id).await.unwrap().unwrap();
    assert_eq!(active.state, ConnectorState::Active);
    assert!(active.updated_at >= active.created_at);
    let got = repo.get_active(&n.tenant_id, n.id).await.unwrap().unwrap();
    assert_eq!(got.name.as_str(), "prod");
    assert_eq!(got.default_channel_id.as_str(), "C0000ALERT");
    assert_eq!(got.workspace_id.as_str(), "T0001");

    assert!(
        repo.mark_active(n.id).await.unwrap().is_none(),
        "only creating rows activate"
    );
}

/// Conformance case `find_active_ignores_the_tenant_but_not_the_state`.
pub async fn find_active_ignores_the_tenant_but_not_the_state<
    R: ConnectorRepository + Clone + 'static,
>(
    repo: &R,
) {
    let n = new("acme", "prod", None);
    repo.insert_creating(&n).await.unwrap();
    assert!(
        repo.find_active(n.id).await.unwrap().is_none(),
        "creating is not active"
    );
    repo.mark_active(n.id).await.unwrap();
    assert_eq!(repo.find_active(n.id).await.unwrap().unwrap().id, n.id);
    repo.mark_deleting(&n.tenant_id, n.id).await.unwrap();
    assert!(
        repo.find_active(n.id).await.unwrap().is_none(),
        "deleting is not active"
    );
}

/// Conformance case `rows_are_tenant_scoped`.
pub async fn rows_are_tenant_scoped<R: ConnectorRepository + Clone + 'static>(repo: &R) {
    let n = new("acme", "prod", None);
    create_active(repo, &n).await;
    assert!(
        repo.get_active(&tenant("other"), n.id)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        repo.list_active(&tenant("other"), None, 10, None)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        repo.mark_deleting(&tenant("other"), n.id)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        repo.get_active(&n.tenant_id, n.id).await.unwrap().is_some(),
        "untouched"
    );
}

/// Conformance case `names_are_unique_per_tenant_only`.
pub async fn names_are_unique_per_tenant_only<R: ConnectorRepository + Clone + 'static>(repo: &R) {
    create_active(repo, &new("acme", "prod", None)).await;
    let err = repo
        .insert_creating(&new("acme", "prod", None))
        .await
        .unwrap_err();
    assert!(matches!(err, RepositoryError::DuplicateName), "{err:?}");
    create_active(repo, &new("other", "prod", None)).await;
}

/// Conformance case `request_ids_are_unique_per_tenant_and_found_in_any_state`.
pub async fn request_ids_are_unique_per_tenant_and_found_in_any_state<
    R: ConnectorRepository + Clone + 'static,
>(
    repo: &R,
) {
    let first = new("acme", "prod", Some("req-1"));
    repo.insert_creating(&first).await.unwrap();
    let err = repo
        .insert_creating(&new("acme", "staging", Some("req-1")))
        .await
        .unwrap_err();
    assert!(
        matches!(err, RepositoryError::DuplicateRequestId),
        "{err:?}"
    );
    repo.insert_creating(&new("other", "prod", Some("req-1")))
        .await
        .unwrap();

    let rid = RequestId::parse_optional("request_id", "req-1")
        .unwrap()
        .unwrap();
    let found = repo
        .find_by_request_id(&tenant("acme"), &rid)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.id, first.id);
    assert_eq!(found.state, ConnectorState::Creating);
    let none = RequestId::parse_optional("request_id", "req-2")
        .unwrap()
        .unwrap();
    assert!(
        repo.find_by_request_id(&tenant("acme"), &none)
            .await
            .unwrap()
            .is_none()
    );
}

/// Conformance case `list_pages_through_active_rows_in_creation_order`.
pub async fn list_pages_through_active_rows_in_creation_order<
    R: ConnectorRepository + Clone + 'static,
>(
    repo: &R,
) {
    let mut ids = Vec::new();
    for i in 0..5 {
        let n = new("acme", &format!("c{i}"), None);
        create_active(repo, &n).await;
        ids.push(n.id);
    }
    repo.insert_creating(&new("acme", "hidden", None))
        .await
        .unwrap();

    let first = repo
        .list_active(&tenant("acme"), None, 2, None)
        .await
        .unwrap();
    assert_eq!(first.iter().map(|c| c.id).collect::<Vec<_>>(), ids[..2]);
    let rest = repo
        .list_active(&tenant("acme"), Some(ids[1]), 10, None)
        .await
        .unwrap();
    assert_eq!(rest.iter().map(|c| c.id).collect::<Vec<_>>(), ids[2..]);
}

/// Conformance case `delete_lifecycle`.
pub async fn delete_lifecycle<R: ConnectorRepository + Clone + 'static>(repo: &R) {
    let n = new("acme", "prod", None);
    create_active(repo, &n).await;

    let deleting = repo
        .mark_deleting(&n.tenant_id, n.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(deleting.state, ConnectorState::Deleting);
    assert!(repo.get_active(&n.tenant_id, n.id).await.unwrap().is_none());
    // An interrupted delete can be resumed.
    assert!(
        repo.mark_deleting(&n.tenant_id, n.id)
            .await
            .unwrap()
            .is_some()
    );

    repo.remove_deleting(n.id).await.unwrap();
    assert!(
        repo.mark_deleting(&n.tenant_id, n.id)
            .await
            .unwrap()
            .is_none()
    );
    // The name is free again.
    create_active(repo, &new("acme", "prod", None)).await;
}

/// Conformance case `compensation_removes_only_creating_rows`.
pub async fn compensation_removes_only_creating_rows<R: ConnectorRepository + Clone + 'static>(
    repo: &R,
) {
    let n = new("acme", "prod", None);
    create_active(repo, &n).await;
    repo.remove_creating(n.id).await.unwrap();
    assert!(repo.get_active(&n.tenant_id, n.id).await.unwrap().is_some());
    repo.remove_deleting(n.id).await.unwrap();
    assert!(repo.get_active(&n.tenant_id, n.id).await.unwrap().is_some());

    let c = new("acme", "half", None);
    repo.insert_creating(&c).await.unwrap();
    repo.remove_creating(c.id).await.unwrap();
    assert!(repo.mark_active(c.id).await.unwrap().is_none());
}

/// Conformance case `claim_stale_takes_unfinished_rows_once_per_lease`.
pub async fn claim_stale_takes_unfinished_rows_once_per_lease<
    R: ConnectorRepository + Clone + 'static,
>(
    repo: &R,
) {
    let creating = new("acme", "creating", None);
    repo.insert_creating(&creating).await.unwrap();
    let deleting = new("acme", "deleting", None);
    create_active(repo, &deleting).await;
    repo.mark_deleting(&deleting.tenant_id, deleting.id)
        .await
        .unwrap();
    let active = new("acme", "active", None);
    create_active(repo, &active).await;

    // Nothing is stale yet under a long grace period.
    assert!(
        repo.claim_stale(Duration::from_secs(3600), 10)
            .await
            .unwrap()
            .is_empty()
    );

    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut claimed: Vec<_> = repo
        .claim_stale(Duration::from_millis(10), 10)
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.id, c.state))
        .collect();
    claimed.sort_by_key(|(id, _)| *id);
    let mut want = vec![
        (creating.id, ConnectorState::Deleting),
        (deleting.id, ConnectorState::Deleting),
    ];
    want.sort_by_key(|(id, _)| *id);
    assert_eq!(claimed, want, "both unfinished rows, flipped to deleting");

    // The lease was renewed: a second claim right away takes nothing.
    assert!(
        repo.claim_stale(Duration::from_secs(1), 10)
            .await
            .unwrap()
            .is_empty()
    );
    // The creating row was taken over: the original create can no longer activate it.
    assert!(repo.mark_active(creating.id).await.unwrap().is_none());
}

/// Conformance case `concurrent_claims_never_take_the_same_row_twice`.
pub async fn concurrent_claims_never_take_the_same_row_twice<
    R: ConnectorRepository + Clone + 'static,
>(
    repo: &R,
) {
    for i in 0..20 {
        repo.insert_creating(&new("acme", &format!("c{i}"), None))
            .await
            .unwrap();
    }
    // A row is stale once its `updated_at` is older than the claim's window, and a claim
    // renews `updated_at`: the window is also the claim's lease. Waiting for the rows to
    // become stale is waiting for time itself (counted from the last write), not for another
    // task.
    let window = Duration::from_secs(1);
    tokio::time::sleep_until(tokio::time::Instant::now() + window + Duration::from_millis(50))
        .await;
    let claims = claim_concurrently(repo, window).await;
    let mut takers: std::collections::HashMap<ConnectorId, Vec<usize>> = Default::default();
    for (i, claim) in claims.iter().enumerate() {
        for c in &claim.rows {
            takers.entry(c.id).or_default().push(i);
        }
    }
    assert_eq!(takers.len(), 20, "every stale row is claimed");
    // A row may be claimed again only once its lease ran out: when the claims that took it
    // spanned more than the window (a slow machine). Within the window, never.
    for (id, by) in &takers {
        if by.len() > 1 {
            let first_start = by.iter().map(|i| claims[*i].started).min().unwrap();
            let last_end = by.iter().map(|i| claims[*i].ended).max().unwrap();
            assert!(
                last_end - first_start > window,
                "row {id} was claimed {} times within its lease",
                by.len()
            );
        }
    }
}

/// One claim's rows and when it ran.
struct Claim {
    rows: Vec<connector_domain::Connector>,
    started: tokio::time::Instant,
    ended: tokio::time::Instant,
}

async fn claim_concurrently<R: ConnectorRepository + Clone + 'static>(
    repo: &R,
    window: Duration,
) -> Vec<Claim> {
    let mut handles = Vec::new();
    for _ in 0..4 {
        let r = repo.clone();
        handles.push(tokio::spawn(async move {
            let started = tokio::time::Instant::now();
            let rows = r.claim_stale(window, 20).await.unwrap();
            Claim {
                rows,
                started,
                ended: tokio::time::Instant::now(),
            }
        }));
    }
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

fn pending(tenant_id: &str, name: &str, expires_in_secs: i64) -> PendingInstall {
    PendingInstall {
        tenant_id: tenant(tenant_id),
        name: ConnectorName::parse("name", name).unwrap(),
        default_channel: "#alerts".into(),
        expires_at: chrono::Utc::now() + chrono::Duration::seconds(expires_in_secs),
        team_id: None,
        browser_hash: None,
    }
}

/// Conformance case: a state is taken once, by its browser only, with what was saved.
pub async fn oauth_states_are_single_use<R: OAuthStateStore>(repo: &R) {
    let mut p = pending("acme", "prod", 600);
    p.browser_hash = Some("browser".into());
    repo.save_state("hash-1", &p).await.unwrap();
    assert!(
        repo.take_state("hash-1", "stranger")
            .await
            .unwrap()
            .is_none(),
        "another browser took it"
    );
    let taken = repo.take_state("hash-1", "browser").await.unwrap().unwrap();
    assert_eq!(taken.tenant_id, p.tenant_id);
    assert_eq!(taken.name, p.name);
    assert_eq!(taken.default_channel, "#alerts");
    assert!((taken.expires_at - p.expires_at).num_milliseconds().abs() < 1);
    assert!(
        repo.take_state("hash-1", "browser")
            .await
            .unwrap()
            .is_none(),
        "replayed"
    );
    assert!(
        repo.take_state("never-issued", "browser")
            .await
            .unwrap()
            .is_none()
    );
}

/// Conformance case: expired states are still returned once (so the caller can say
/// "expired"), and purged by `purge_states`.
pub async fn expired_oauth_states_are_purged<R: OAuthStateStore>(repo: &R) {
    let bound = |mut p: PendingInstall| {
        p.browser_hash = Some("browser".into());
        p
    };
    repo.save_state("old", &bound(pending("acme", "a", -60)))
        .await
        .unwrap();
    repo.save_state("fresh", &bound(pending("acme", "b", 600)))
        .await
        .unwrap();
    assert_eq!(repo.purge_states(chrono::Utc::now()).await.unwrap(), 1);
    assert!(repo.take_state("old", "browser").await.unwrap().is_none());
    assert!(repo.take_state("fresh", "browser").await.unwrap().is_some());
}

/// Conformance case: the refresh lease is exclusive, expiring tokens are found, outcomes are
/// recorded, and a failed refresh is visible and not retried.
pub async fn token_refresh_leases_and_outcomes<R: ConnectorRepository>(repo: &R) {
    use connector_domain::AuthStatus;
    let now = chrono::Utc::now();
    let mut n = new("acme", "rotating", None);
    n.token_expires_at = Some(now + chrono::Duration::seconds(30));
    create_active(repo, &n).await;
    create_active(repo, &new("acme", "static", None)).await;

    let soon = now + chrono::Duration::hours(1);
    let due = repo.tokens_expiring(soon, 10).await.unwrap();
    assert_eq!(
        due.iter().map(|c| c.id).collect::<Vec<_>>(),
        vec![n.id],
        "only rotating tokens"
    );

    assert!(
        repo.lease_token_refresh(n.id, Duration::from_secs(60), 1)
            .await
            .unwrap()
    );
    assert!(
        !repo
            .lease_token_refresh(n.id, Duration::from_secs(60), 2)
            .await
            .unwrap(),
        "held"
    );
    assert!(
        repo.tokens_expiring(soon, 10).await.unwrap().is_empty(),
        "leased: not due"
    );

    let renewed = now + chrono::Duration::hours(12);
    // Only the holder's fence renews or finishes.
    assert!(
        !repo
            .renew_token_refresh(n.id, 2, Duration::from_secs(60))
            .await
            .unwrap()
    );
    assert!(
        repo.renew_token_refresh(n.id, 1, Duration::from_secs(60))
            .await
            .unwrap()
    );
    assert!(
        !repo
            .finish_token_refresh(n.id, 2, RefreshOutcome::Failed)
            .await
            .unwrap(),
        "not the holder"
    );
    assert!(
        repo.finish_token_refresh(
            n.id,
            1,
            RefreshOutcome::Refreshed {
                expires_at: renewed,
            },
        )
        .await
        .unwrap()
    );
    assert!(
        repo.tokens_expiring(soon, 10).await.unwrap().is_empty(),
        "fresh again"
    );
    assert_eq!(
        repo.tokens_expiring(now + chrono::Duration::hours(13), 10)
            .await
            .unwrap()
            .len(),
        1
    );

    assert!(
        repo.lease_token_refresh(n.id, Duration::from_secs(60), 3)
            .await
            .unwrap(),
        "released"
    );
    assert!(
        repo.finish_token_refresh(n.id, 3, RefreshOutcome::Abandoned)
            .await
            .unwrap()
    );
    assert!(
        !repo
            .finish_token_refresh(n.id, 3, RefreshOutcome::Failed)
            .await
            .unwrap(),
        "finished twice"
    );
    assert!(
        repo.lease_token_refresh(n.id, Duration::from_secs(60), 4)
            .await
            .unwrap(),
        "released"
    );
    assert!(
        repo.finish_token_refresh(n.id, 4, RefreshOutcome::Failed)
            .await
            .unwrap()
    );
    let c = repo.get_active(&n.tenant_id, n.id).await.unwrap().unwrap();
    assert_eq!(c.auth_status, AuthStatus::NeedsReauthorization);
    assert!(
        repo.tokens_expiring(now + chrono::Duration::hours(13), 10)
            .await
            .unwrap()
            .is_empty(),
        "a failed refresh waits for a person"
    );

    // An expired lease can be taken over, and then the first holder is fenced out: its late
    // finish changes nothing.
    let mut m = new("acme", "crashed", None);
    m.token_expires_at = Some(now);
    create_active(repo, &m).await;
    assert!(
        repo.lease_token_refresh(m.id, Duration::from_millis(50), 10)
            .await
            .unwrap()
    );
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert!(
        repo.lease_token_refresh(m.id, Duration::from_secs(60), 11)
            .await
            .unwrap()
    );
    assert!(
        !repo
            .finish_token_refresh(m.id, 10, RefreshOutcome::Failed)
            .await
            .unwrap(),
        "the late finisher was not fenced out"
    );
    assert!(
        !repo
            .renew_token_refresh(m.id, 10, Duration::from_secs(60))
            .await
            .unwrap()
    );
    let c = repo.get_active(&m.tenant_id, m.id).await.unwrap().unwrap();
    assert_eq!(
        c.auth_status,
        AuthStatus::Ok,
        "the late finisher changed the row"
    );
    assert!(
        !repo
            .lease_token_refresh(m.id, Duration::from_secs(60), 12)
            .await
            .unwrap(),
        "the new holder's lease still runs"
    );
}

fn rand_fence() -> i64 {
    rand::random()
}

/// Conformance case: of many replicas asking at once, one gets the lease.
pub async fn one_refresh_lease_among_concurrent_takers<R: ConnectorRepository + Clone + 'static>(
    repo: &R,
) {
    let n = new("acme", "contended", None);
    create_active(repo, &n).await;
    let mut handles = Vec::new();
    for _ in 0..8 {
        let r = repo.clone();
        handles.push(tokio::spawn(async move {
            r.lease_token_refresh(n.id, Duration::from_secs(60), rand_fence())
                .await
                .unwrap()
        }));
    }
    let mut granted = 0;
    for h in handles {
        granted += usize::from(h.await.unwrap());
    }
    assert_eq!(granted, 1);
}

/// Keys come back as stored (one tenant or every tenant, their scopes), in creation order;
/// revoking works once and is visible.
pub async fn api_keys_round_trip_and_revoke_once<R: ApiKeyStore>(repo: &R) {
    use connector_domain::{ApiKeyId, Scope, Scopes, TenantGrant};
    let now =
        chrono::DateTime::from_timestamp_micros(chrono::Utc::now().timestamp_micros()).unwrap();
    let one = ApiKeyRecord {
        id: ApiKeyId::new_random(),
        secret_hash: "ab".repeat(32),
        tenants: TenantGrant::One(TenantId::parse("t", "acme").unwrap()),
        scopes: Scopes::none().with(Scope::MessagesSend),
        name: "ci".into(),
        created_at: now,
        revoked_at: None,
    };
    let all = ApiKeyRecord {
        id: ApiKeyId::new_random(),
        secret_hash: "cd".repeat(32),
        tenants: TenantGrant::All,
        scopes: Scopes::all(),
        name: "platform".into(),
        created_at: now + chrono::Duration::seconds(1),
        revoked_at: None,
    };
    repo.insert_api_key(&one).await.unwrap();
    repo.insert_api_key(&all).await.unwrap();
    assert_eq!(repo.find_api_key(one.id).await.unwrap(), Some(one.clone()));
    assert_eq!(repo.find_api_key(all.id).await.unwrap(), Some(all.clone()));
    assert_eq!(
        repo.find_api_key(ApiKeyId::new_random()).await.unwrap(),
        None
    );
    assert_eq!(
        repo.list_api_keys().await.unwrap(),
        vec![one.clone(), all.clone()]
    );

    let at = now + chrono::Duration::seconds(5);
    assert!(repo.revoke_api_key(one.id, at).await.unwrap());
    assert!(
        !repo.revoke_api_key(one.id, at).await.unwrap(),
        "revoked twice"
    );
    assert!(
        !repo
            .revoke_api_key(ApiKeyId::new_random(), at)
            .await
            .unwrap()
    );
    let revoked = repo.find_api_key(one.id).await.unwrap().unwrap();
    assert_eq!(revoked.revoked_at, Some(at));
    assert_eq!(
        repo.find_api_key(all.id).await.unwrap().unwrap().revoked_at,
        None
    );
}

/// Counts for quotas: a tenant's connectors in any state, its unexpired pending installs.
pub async fn quota_counts_are_per_tenant<R: ConnectorRepository + OAuthStateStore>(repo: &R) {
    let acme = tenant("acme");
    assert_eq!(repo.count_connectors(&acme).await.unwrap(), 0);
    create_active(repo, &new("acme", "a", None)).await;
    repo.insert_creating(&new("acme", "b", None)).await.unwrap();
    create_active(repo, &new("globex", "a", None)).await;
    assert_eq!(repo.count_connectors(&acme).await.unwrap(), 2);
    assert_eq!(repo.count_connectors(&tenant("globex")).await.unwrap(), 1);
    // Across tenants, by state and auth status, for metrics.
    let mut by_status = repo.count_by_status().await.unwrap();
    by_status.sort_by_key(|c| c.state.as_str());
    assert_eq!(
        by_status,
        vec![
            StatusCount {
                state: ConnectorState::Active,
                auth_status: AuthStatus::Ok,
                count: 2
            },
            StatusCount {
                state: ConnectorState::Creating,
                auth_status: AuthStatus::Ok,
                count: 1
            },
        ]
    );

    let now = chrono::Utc::now();
    for (hash, expires_at) in [
        ("h1", now + chrono::Duration::minutes(5)),
        ("h2", now + chrono::Duration::minutes(5)),
        ("h3", now - chrono::Duration::minutes(5)),
    ] {
        repo.save_state(
            hash,
            &PendingInstall {
                tenant_id: acme.clone(),
                name: ConnectorName::parse("name", "x").unwrap(),
                default_channel: "#alerts".into(),
                expires_at,
                team_id: None,
                browser_hash: None,
            },
        )
        .await
        .unwrap();
    }
    assert_eq!(
        repo.count_states(&acme, now).await.unwrap(),
        2,
        "expired ones do not count"
    );
    assert_eq!(repo.count_states(&tenant("globex"), now).await.unwrap(), 0);
}

/// An install link is bound to the first browser that opens it, once, and only while it is
/// valid; the binding and a pinned workspace come back with the state.
pub async fn an_install_is_bound_to_the_first_browser_only<R: OAuthStateStore>(repo: &R) {
    let now = chrono::Utc::now();
    let mut p = pending("acme", "prod", 600);
    p.team_id = Some(WorkspaceId::new("T0PINNED1"));
    repo.save_state("bind-1", &p).await.unwrap();
    let bound = repo
        .bind_browser("bind-1", "browser-a", now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(bound.browser_hash.as_deref(), Some("browser-a"));
    assert!(
        repo.bind_browser("bind-1", "browser-b", now)
            .await
            .unwrap()
            .is_none(),
        "a second browser took the install over"
    );
    assert!(
        repo.bind_browser("unknown", "browser-a", now)
            .await
            .unwrap()
            .is_none()
    );
    let taken = repo
        .take_state("bind-1", "browser-a")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(taken.browser_hash.as_deref(), Some("browser-a"));
    assert_eq!(taken.team_id, Some(WorkspaceId::new("T0PINNED1")));

    repo.save_state("bind-expired", &pending("acme", "old", -5))
        .await
        .unwrap();
    assert!(
        repo.bind_browser("bind-expired", "browser-a", now)
            .await
            .unwrap()
            .is_none(),
        "an expired link was bound"
    );
}

fn send_key(connector: ConnectorId, request_id: &str) -> connector_ports::SendKey {
    connector_ports::SendKey {
        tenant_id: tenant("acme"),
        connector_id: connector,
        request_id: RequestId::parse("request_id", request_id).unwrap(),
    }
}

/// Conformance case: a posted message is known only for the connector and channel that posted
/// it, recorded once, forgotten when deleted and purged when old.
pub async fn posted_messages_are_kept_per_connector<R: connector_ports::SentMessageStore>(
    repo: &R,
) {
    use connector_ports::PostedRecord;
    let (mine, theirs) = (ConnectorId::new_v7(), ConnectorId::new_v7());
    let alerts = ChannelId::new("C0000ALERT");
    let now = chrono::Utc::now();
    let posted = |connector, ts: &str| PostedRecord {
        tenant_id: tenant("acme"),
        connector_id: connector,
        channel: alerts.clone(),
        ts: ts.into(),
    };
    repo.record_posted(
        &[
            posted(mine, "1700000000.000100"),
            posted(mine, "Q0SCHEDULED"),
        ],
        now - chrono::Duration::days(100),
    )
    .await
    .unwrap();
    repo.record_posted(&[posted(mine, "1700000000.000200")], now)
        .await
        .unwrap();
    // Recorded again (a repeat of a keyed send): kept as it was.
    repo.record_posted(&[posted(mine, "1700000000.000200")], now)
        .await
        .unwrap();
    assert!(
        repo.was_posted(mine, &alerts, "1700000000.000100")
            .await
            .unwrap()
    );
    assert!(repo.was_posted(mine, &alerts, "Q0SCHEDULED").await.unwrap());
    assert!(
        !repo
            .was_posted(theirs, &alerts, "1700000000.000100")
            .await
            .unwrap()
    );
    assert!(
        !repo
            .was_posted(mine, &ChannelId::new("C0000OTHER"), "1700000000.000100")
            .await
            .unwrap()
    );
    repo.forget_posted(mine, &alerts, "Q0SCHEDULED")
        .await
        .unwrap();
    assert!(!repo.was_posted(mine, &alerts, "Q0SCHEDULED").await.unwrap());
    assert_eq!(
        repo.purge_posted(now - chrono::Duration::days(90))
            .await
            .unwrap(),
        1
    );
    assert!(
        !repo
            .was_posted(mine, &alerts, "1700000000.000100")
            .await
            .unwrap()
    );
    assert!(
        repo.was_posted(mine, &alerts, "1700000000.000200")
            .await
            .unwrap()
    );
}

/// Conformance case `a_send_key_is_claimed_once_and_keeps_its_outcome`.
pub async fn a_send_key_is_claimed_once_and_keeps_its_outcome<
    R: connector_ports::SentMessageStore,
>(
    repo: &R,
) {
    use connector_ports::SendOutcome;
    let now = chrono::Utc::now();
    let day_ago = now - chrono::Duration::days(1);
    let id = ConnectorId::new_v7();
    let key = send_key(id, "k1");
    assert!(repo.find_send(&key).await.unwrap().is_none());
    assert!(
        repo.claim_send(&key, "fp1", None, now, day_ago)
            .await
            .unwrap()
            .is_none()
    );
    let first = repo
        .claim_send(&key, "fp2", None, now, day_ago)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.outcome, SendOutcome::InFlight);
    assert_eq!(first.fingerprint, "fp1");
    assert_eq!(first.created_at.timestamp_micros(), now.timestamp_micros());
    // The same key through another connector is another send.
    assert!(
        repo.claim_send(
            &send_key(ConnectorId::new_v7(), "k1"),
            "fp1",
            None,
            now,
            day_ago
        )
        .await
        .unwrap()
        .is_none()
    );

    for outcome in [
        SendOutcome::Unknown,
        SendOutcome::PartiallySent {
            channel: ChannelId::new("C1"),
            ts: "1.1".into(),
        },
        SendOutcome::Sent {
            channel: ChannelId::new("C1"),
            ts: "1.2".into(),
        },
    ] {
        repo.finish_send(&key, &outcome).await.unwrap();
        let found = repo.find_send(&key).await.unwrap().unwrap();
        assert_eq!(found.outcome, outcome);
        assert_eq!(
            repo.claim_send(&key, "fp1", None, now, day_ago)
                .await
                .unwrap()
                .unwrap()
                .outcome,
            outcome
        );
    }
    // A finished send is never released: only a claim still in flight is.
    repo.release_send(&key).await.unwrap();
    assert!(repo.find_send(&key).await.unwrap().is_some());
    let other = send_key(id, "k2");
    repo.claim_send(&other, "fp", None, now, day_ago)
        .await
        .unwrap();
    repo.release_send(&other).await.unwrap();
    assert!(repo.find_send(&other).await.unwrap().is_none());
    assert!(
        repo.claim_send(&other, "fp", None, now, day_ago)
            .await
            .unwrap()
            .is_none()
    );
}

/// Conformance case `expired_send_keys_are_reclaimed_and_purged`.
pub async fn expired_send_keys_are_reclaimed_and_purged<R: connector_ports::SentMessageStore>(
    repo: &R,
) {
    let now = chrono::Utc::now();
    let old = now - chrono::Duration::hours(25);
    let id = ConnectorId::new_v7();
    let stale = send_key(id, "old");
    repo.claim_send(&stale, "fp", None, old, old - chrono::Duration::days(1))
        .await
        .unwrap();
    let fresh = send_key(id, "new");
    repo.claim_send(&fresh, "fp", None, now, now - chrono::Duration::days(1))
        .await
        .unwrap();
    // Past the window the key is free again.
    assert!(
        repo.claim_send(
            &stale,
            "fp-again",
            None,
            now,
            now - chrono::Duration::days(1)
        )
        .await
        .unwrap()
        .is_none()
    );
    let other = send_key(id, "old-2");
    repo.claim_send(&other, "fp", None, old, old - chrono::Duration::days(1))
        .await
        .unwrap();
    assert_eq!(
        repo.purge_sends(now - chrono::Duration::days(1))
            .await
            .unwrap(),
        1
    );
    assert!(repo.find_send(&other).await.unwrap().is_none());
    assert_eq!(
        repo.find_send(&stale).await.unwrap().unwrap().fingerprint,
        "fp-again"
    );
    assert!(repo.find_send(&fresh).await.unwrap().is_some());
}

/// Conformance case `a_send_whose_answer_was_lost_is_retaken_once`: a claim keeps the ID its
/// post carries, and of concurrent repeats that found it absent from Slack one claims it again.
pub async fn a_send_whose_answer_was_lost_is_retaken_once<
    R: connector_ports::SentMessageStore + Clone + 'static,
>(
    repo: &R,
) {
    use connector_domain::MessageId;
    use connector_ports::SendOutcome;
    let claimed_at = chrono::Utc::now() - chrono::Duration::seconds(30);
    let key = send_key(ConnectorId::new_v7(), "lost");
    let id = MessageId::new_v7();
    assert!(
        repo.claim_send(
            &key,
            "fp",
            Some(id),
            claimed_at,
            claimed_at - chrono::Duration::days(1)
        )
        .await
        .unwrap()
        .is_none()
    );
    let in_flight = repo.find_send(&key).await.unwrap().unwrap();
    assert_eq!(in_flight.message_id, Some(id));
    assert_eq!(in_flight.updated_at, in_flight.created_at);
    repo.finish_send(&key, &SendOutcome::Unknown).await.unwrap();
    let seen = repo.find_send(&key).await.unwrap().unwrap();
    assert_eq!(seen.outcome, SendOutcome::Unknown);
    assert!(seen.updated_at > seen.created_at, "{seen:?}");

    let now = chrono::Utc::now();
    let takers: Vec<_> = (0..6)
        .map(|_| {
            let (repo, key, seen) = (repo.clone(), key.clone(), seen.clone());
            tokio::spawn(async move { repo.retake_send(&key, &seen, now).await.unwrap() })
        })
        .collect();
    let mut winners = 0;
    for taker in takers {
        winners += usize::from(taker.await.unwrap());
    }
    assert_eq!(winners, 1, "one repeat posts it");
    let retaken = repo.find_send(&key).await.unwrap().unwrap();
    assert_eq!(retaken.outcome, SendOutcome::InFlight);
    assert_eq!(
        retaken.created_at.timestamp_micros(),
        now.timestamp_micros()
    );
    assert_eq!(
        retaken.message_id,
        Some(id),
        "posted again as the same message"
    );
    // What it was is no longer what it is: a late repeat does not take it.
    assert!(!repo.retake_send(&key, &seen, now).await.unwrap());
    // A key never claimed is not made up.
    assert!(
        !repo
            .retake_send(&send_key(ConnectorId::new_v7(), "none"), &seen, now)
            .await
            .unwrap()
    );
}

/// Conformance case `concurrent_claims_of_one_send_key_have_one_winner`.
pub async fn concurrent_claims_of_one_send_key_have_one_winner<
    R: connector_ports::SentMessageStore + Clone + 'static,
>(
    repo: &R,
) {
    let key = send_key(ConnectorId::new_v7(), "race");
    let now = chrono::Utc::now();
    let claims: Vec<_> = (0..8)
        .map(|_| {
            let repo = repo.clone();
            let key = key.clone();
            tokio::spawn(async move {
                repo.claim_send(&key, "fp", None, now, now - chrono::Duration::days(1))
                    .await
                    .unwrap()
                    .is_none()
            })
        })
        .collect();
    let mut winners = 0;
    for claim in claims {
        winners += usize::from(claim.await.unwrap());
    }
    assert_eq!(winners, 1);
}

/// Conformance case: an update applies only at the generation it read, moves it by one, keeps
/// its request ID, refuses a taken name, and a token replacement records its staged version
/// (found by `pending_promotions` once old enough, forgotten by `clear_pending_promotion`),
/// re-authorises the connector and drops its rotating token's expiry and refresh lease.
pub async fn updates_are_conditional_and_record_staged_versions<R: ConnectorRepository>(repo: &R) {
    let t = tenant("acme");
    let mut n = new("acme", "prod", None);
    n.token_expires_at = Some(chrono::Utc::now() + chrono::Duration::seconds(30));
    create_active(repo, &n).await;
    create_active(repo, &new("acme", "taken", None)).await;
    let before = repo.get_active(&t, n.id).await.unwrap().unwrap();
    assert_eq!(before.generation, 1);
    assert_eq!(before.etag(), "g1");
    assert_eq!(before.last_update_request_id, None);

    let rename = ConnectorUpdate {
        name: Some(ConnectorName::parse("name", "renamed").unwrap()),
        request_id: Some(RequestId::parse("request_id", "upd-1").unwrap()),
        ..ConnectorUpdate::default()
    };
    let after = repo
        .update_active(&t, n.id, 1, &rename)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after.name.as_str(), "renamed");
    assert_eq!(after.generation, 2);
    assert_eq!(after.last_update_request_id, rename.request_id);
    assert!(after.updated_at >= before.updated_at);
    assert_eq!(after.default_channel_id, before.default_channel_id);
    assert_eq!(repo.get_active(&t, n.id).await.unwrap().unwrap(), after);

    // At a stale generation, or through another tenant: nothing.
    assert!(
        repo.update_active(&t, n.id, 1, &rename)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        repo.update_active(&tenant("other"), n.id, 2, &rename)
            .await
            .unwrap()
            .is_none()
    );
    let taken = ConnectorUpdate {
        name: Some(ConnectorName::parse("name", "taken").unwrap()),
        ..ConnectorUpdate::default()
    };
    assert!(matches!(
        repo.update_active(&t, n.id, 2, &taken).await,
        Err(RepositoryError::DuplicateName)
    ));

    // The refresh of the rotating token failed: the connector needs reauthorisation...
    assert!(
        repo.lease_token_refresh(n.id, Duration::from_secs(60), 7)
            .await
            .unwrap()
    );
    assert!(
        repo.finish_token_refresh(n.id, 7, RefreshOutcome::Failed)
            .await
            .unwrap()
    );
    let failed = repo.get_active(&t, n.id).await.unwrap().unwrap();
    assert_eq!(failed.auth_status, AuthStatus::NeedsReauthorization);
    // ...until a replacement token (and a new channel) is recorded.
    let replace = ConnectorUpdate {
        default_channel: Some((ChannelId::new("C0000OPS"), ChannelName::new("ops"))),
        staged_secret_version: Some("v9".into()),
        token_replaced: true,
        ..ConnectorUpdate::default()
    };
    let replaced = repo
        .update_active(&t, n.id, failed.generation, &replace)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(replaced.auth_status, AuthStatus::Ok);
    assert_eq!(replaced.default_channel_id.as_str(), "C0000OPS");
    assert_eq!(replaced.default_channel_name.as_str(), "ops");
    assert_eq!(replaced.name.as_str(), "renamed");
    assert_eq!(replaced.last_update_request_id, None);
    let soon = chrono::Utc::now() + chrono::Duration::hours(1);
    assert!(
        repo.tokens_expiring(soon, 10).await.unwrap().is_empty(),
        "the replacement token does not rotate"
    );
    assert!(
        repo.lease_token_refresh(n.id, Duration::from_secs(60), 8)
            .await
            .unwrap(),
        "the old lease is gone"
    );

    assert!(
        repo.pending_promotions(Duration::from_secs(3600), 10)
            .await
            .unwrap()
            .is_empty(),
        "too recent"
    );
    tokio::time::sleep(Duration::from_millis(20)).await;
    let pending = repo
        .pending_promotions(Duration::from_millis(1), 10)
        .await
        .unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].connector.id, n.id);
    assert_eq!(pending[0].version, "v9");
    assert!(!repo.clear_pending_promotion(n.id, "v8").await.unwrap());
    assert!(repo.clear_pending_promotion(n.id, "v9").await.unwrap());
    assert!(!repo.clear_pending_promotion(n.id, "v9").await.unwrap());
    assert!(
        repo.pending_promotions(Duration::from_millis(1), 10)
            .await
            .unwrap()
            .is_empty()
    );
    // Clearing is bookkeeping: the connector's etag stays.
    assert_eq!(
        repo.get_active(&t, n.id).await.unwrap().unwrap().generation,
        replaced.generation
    );

    // A connector being deleted is not updated.
    repo.mark_deleting(&t, n.id).await.unwrap().unwrap();
    assert!(
        repo.update_active(&t, n.id, replaced.generation, &rename)
            .await
            .unwrap()
            .is_none()
    );
}

/// Conformance case: Slack's events act on a workspace's connectors of the app they were sent
/// for, of every tenant — revoked (once; a new token lifts it), a default channel renamed,
/// made unavailable and available again (a new default channel is available) — never on
/// another app's connectors or those whose app is unknown, and `list_active` filters by status.
pub async fn workspace_events_and_status_filters<R: ConnectorRepository>(repo: &R) {
    use connector_domain::ConnectorStatus;
    let a = new("acme", "a", None);
    let b = new("globex", "b", None);
    let mut elsewhere = new("acme", "elsewhere", None);
    elsewhere.workspace_id = WorkspaceId::new("T0OTHER");
    let mut other_channel = new("acme", "other-channel", None);
    other_channel.default_channel_id = ChannelId::new("C0000OTHER");
    // Same workspace and channel, but another app's bot, or one whose app Slack would not say.
    let mut other_app = new("initech", "other-app", None);
    other_app.bot = Some(bot("U0OTHERBOT", Some("A0OTHER")));
    let mut unknown_app = new("initech", "unknown-app", None);
    unknown_app.bot = Some(bot("U0NOSCOPE", None));
    for n in [&a, &b, &elsewhere, &other_channel, &other_app, &unknown_app] {
        create_active(repo, n).await;
    }
    let untouched = |c: connector_domain::Connector| {
        assert_eq!(c.status(), ConnectorStatus::Active, "{}", c.name);
        assert_eq!(c.default_channel_name.as_str(), "alerts", "{}", c.name);
    };
    let team = WorkspaceId::new("T0001");
    let alerts = ChannelId::new("C0000ALERT");
    let status_of = |c: &connector_domain::Connector| c.status();
    let listed = |tenant: &'static str, status: Option<ConnectorStatus>| async move {
        let mut names: Vec<String> = repo
            .list_active(&self::tenant(tenant), None, 100, status)
            .await
            .unwrap()
            .into_iter()
            .map(|c| c.name.to_string())
            .collect();
        names.sort();
        names
    };

    assert_eq!(
        repo.rename_channel(&team, APP, &alerts, &ChannelName::new("alerts-2"))
            .await
            .unwrap(),
        2,
        "both tenants' connectors on that channel"
    );
    let got = repo.get_active(&a.tenant_id, a.id).await.unwrap().unwrap();
    assert_eq!(got.default_channel_name.as_str(), "alerts-2");
    assert_eq!(
        repo.set_channel_available(&team, APP, &alerts, false)
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        repo.set_channel_available(&team, APP, &alerts, false)
            .await
            .unwrap(),
        0,
        "already so"
    );
    let got = repo.get_active(&a.tenant_id, a.id).await.unwrap().unwrap();
    assert_eq!(status_of(&got), ConnectorStatus::DefaultChannelUnavailable);
    assert_eq!(
        listed("acme", Some(ConnectorStatus::DefaultChannelUnavailable)).await,
        vec!["a"]
    );
    assert_eq!(
        listed("acme", Some(ConnectorStatus::Active)).await,
        vec!["elsewhere", "other-channel"]
    );
    assert_eq!(
        repo.set_channel_available(&team, APP, &alerts, true)
            .await
            .unwrap(),
        2
    );

    // Another app's events touch none of them.
    assert_eq!(
        repo.rename_channel(&team, "A0OTHER2", &alerts, &ChannelName::new("x"))
            .await
            .unwrap(),
        0
    );
    assert!(
        repo.revoke_workspace(&team, "A0OTHER2", None)
            .await
            .unwrap()
            .is_empty()
    );
    // Revoked tokens of bot users not this app's, or not of this workspace, revoke nothing.
    assert!(
        repo.revoke_workspace(
            &team,
            APP,
            Some(&["U0OTHERBOT".to_owned(), "U0NOBODY".to_owned()])
        )
        .await
        .unwrap()
        .is_empty()
    );
    assert!(
        repo.revoke_workspace(&team, APP, Some(&[]))
            .await
            .unwrap()
            .is_empty()
    );
    let revoked = repo
        .revoke_workspace(&team, APP, Some(&["U0BOT".to_owned()]))
        .await
        .unwrap();
    let mut ids: Vec<_> = revoked.iter().map(|c| c.id).collect();
    ids.sort();
    let mut want = vec![a.id, b.id, other_channel.id];
    want.sort();
    assert_eq!(ids, want, "every tenant's connector of the workspace");
    assert!(revoked.iter().all(|c| c.auth_status == AuthStatus::Revoked));
    // Revoked stays revoked, and is returned again (its secret may still need deleting).
    assert_eq!(
        repo.revoke_workspace(&team, APP, None).await.unwrap().len(),
        3
    );
    for c in [&other_app, &unknown_app] {
        untouched(repo.get_active(&c.tenant_id, c.id).await.unwrap().unwrap());
    }
    assert_eq!(
        listed("acme", Some(ConnectorStatus::Revoked)).await,
        vec!["a", "other-channel"]
    );
    assert_eq!(
        listed("acme", Some(ConnectorStatus::Active)).await,
        vec!["elsewhere"]
    );
    assert_eq!(listed("acme", None).await.len(), 3);
    assert!(
        listed("acme", Some(ConnectorStatus::NeedsReauthorization))
            .await
            .is_empty()
    );
    assert!(
        repo.count_by_status()
            .await
            .unwrap()
            .iter()
            .any(|c| c.auth_status == AuthStatus::Revoked && c.count == 3)
    );

    // A new token (and channel) brings one back.
    let current = repo.get_active(&a.tenant_id, a.id).await.unwrap().unwrap();
    let back = repo
        .update_active(
            &a.tenant_id,
            a.id,
            current.generation,
            &ConnectorUpdate {
                default_channel: Some((ChannelId::new("C0000NEW"), ChannelName::new("new"))),
                token_replaced: true,
                ..ConnectorUpdate::default()
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(back.status(), ConnectorStatus::Active);
    assert_eq!(
        listed("acme", Some(ConnectorStatus::Active)).await,
        vec!["a", "elsewhere"]
    );
}

/// Conformance case: a connector's bot is kept as inserted and replaced with its token; rows
/// of before (no bot) are found per workspace, only while active and authorised, and learned
/// once.
pub async fn bots_are_recorded_and_learned_once<R: ConnectorRepository>(repo: &R) {
    let known = new("acme", "known", None);
    let mut old = new("acme", "old", None);
    old.bot = None;
    let mut old_elsewhere = new("globex", "old-elsewhere", None);
    old_elsewhere.bot = None;
    old_elsewhere.workspace_id = WorkspaceId::new("T0OTHER");
    let mut old_creating = new("acme", "old-creating", None);
    old_creating.bot = None;
    for n in [&known, &old, &old_elsewhere] {
        create_active(repo, n).await;
    }
    repo.insert_creating(&old_creating).await.unwrap();
    let got = repo.find_active(known.id).await.unwrap().unwrap();
    assert_eq!(got.bot, known.bot);
    assert_eq!(repo.find_active(old.id).await.unwrap().unwrap().bot, None);

    let team = WorkspaceId::new("T0001");
    let ids =
        |rows: Vec<connector_domain::Connector>| rows.into_iter().map(|c| c.id).collect::<Vec<_>>();
    assert_eq!(
        ids(repo.unidentified(Some(&team), 10).await.unwrap()),
        vec![old.id]
    );
    assert_eq!(
        ids(repo.unidentified(None, 10).await.unwrap()),
        vec![old.id, old_elsewhere.id],
        "oldest first, every workspace"
    );
    assert_eq!(repo.unidentified(None, 1).await.unwrap().len(), 1);

    let learned = bot("U0LEARNED", Some(APP));
    assert!(repo.record_bot(old.id, &learned).await.unwrap());
    assert!(
        !repo.record_bot(old.id, &bot("U0LATE", None)).await.unwrap(),
        "learned once: a later answer does not overwrite it"
    );
    assert_eq!(
        repo.find_active(old.id).await.unwrap().unwrap().bot,
        Some(learned)
    );
    assert!(repo.unidentified(Some(&team), 10).await.unwrap().is_empty());

    // A replaced token brings its own bot.
    let current = repo.find_active(known.id).await.unwrap().unwrap();
    let replaced = repo
        .update_active(
            &known.tenant_id,
            known.id,
            current.generation,
            &ConnectorUpdate {
                token_replaced: true,
                bot: Some(bot("U0NEWBOT", None)),
                ..ConnectorUpdate::default()
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(replaced.bot, Some(bot("U0NEWBOT", None)));
    assert!(
        repo.record_bot(old_elsewhere.id, &bot("U0ELSEWHERE", None))
            .await
            .unwrap()
    );
    assert_eq!(
        ids(repo.unidentified(None, 10).await.unwrap()),
        Vec::<ConnectorId>::new(),
        "a bot recorded without its app (no users:read) is not asked about again"
    );
}

/// Conformance case: an event ID is recorded once, across concurrent deliveries; forgetting
/// and purging free it.
pub async fn slack_event_ids_are_recorded_once<R>(repo: &R)
where
    R: connector_ports::SlackEventStore + Clone + 'static,
{
    let now = chrono::Utc::now();
    let takers: Vec<_> = (0..8)
        .map(|_| {
            let repo = repo.clone();
            tokio::spawn(async move { repo.record_event("Ev0001", now).await.unwrap() })
        })
        .collect();
    let mut won = 0;
    for t in takers {
        won += usize::from(t.await.unwrap());
    }
    assert_eq!(won, 1);
    repo.forget_event("Ev0001").await.unwrap();
    assert!(repo.record_event("Ev0001", now).await.unwrap());
    assert!(
        repo.record_event("Ev0002", now - chrono::Duration::hours(30))
            .await
            .unwrap()
    );
    assert_eq!(
        repo.purge_events(now - chrono::Duration::hours(24))
            .await
            .unwrap(),
        1
    );
    assert!(repo.record_event("Ev0002", now).await.unwrap());
    assert!(!repo.record_event("Ev0001", now).await.unwrap());
}

/// An inbound event of `tenant`'s `connector`.
pub fn inbound(
    tenant_id: &str,
    connector: ConnectorId,
    event_type: &str,
    event_id: &str,
) -> connector_ports::NewInboundEvent {
    connector_ports::NewInboundEvent {
        tenant_id: tenant(tenant_id),
        connector_id: connector,
        event_type: event_type.into(),
        event_id: event_id.into(),
        team_id: "T0001".into(),
        channel_id: Some("C0000ALERT".into()),
        user_id: Some("U0SOMEONE".into()),
        ts: Some("1700000000.000100".into()),
        thread_ts: None,
        text: Some("hello".into()),
        from_own_bot: false,
        payload_json: r#"{"type":"message"}"#.into(),
        // As both databases keep it: microseconds.
        received_at: chrono::DateTime::from_timestamp_micros(chrono::Utc::now().timestamp_micros())
            .unwrap(),
    }
}

/// Conformance case: events are appended once per connector (a redelivery is skipped), with
/// cursors that increase per tenant with no gap even under concurrent appends, listed in
/// order with filters, bounded for resumption, and purged by age.
pub async fn inbound_events_are_appended_once_in_tenant_order<R>(repo: &R)
where
    R: connector_ports::EventLog + Clone + 'static,
{
    use connector_ports::EventFilter;
    let (a, b, g) = (
        ConnectorId::new_v7(),
        ConnectorId::new_v7(),
        ConnectorId::new_v7(),
    );
    let acme = tenant("acme");
    assert_eq!(repo.cursor_bounds(&acme).await.unwrap().last, 0);
    let first = repo
        .append_events(&[
            inbound("acme", a, "message", "Ev1"),
            inbound("acme", b, "message", "Ev1"),
            inbound("globex", g, "message", "Ev1"),
        ])
        .await
        .unwrap();
    let cursors: Vec<(String, i64)> = first
        .iter()
        .map(|e| (e.event.tenant_id.to_string(), e.cursor))
        .collect();
    assert_eq!(
        cursors,
        vec![("acme".into(), 1), ("acme".into(), 2), ("globex".into(), 1)],
        "one row per connector, cursors per tenant"
    );
    // A batch larger than one statement holds (PostgreSQL writes 500 rows a statement):
    // every event stored, cursors without a gap, read back in order.
    let initech = tenant("initech");
    let i = ConnectorId::new_v7();
    let many: Vec<_> = (0..1_201)
        .map(|n| inbound("initech", i, "message", &format!("EvMany{n}")))
        .collect();
    let stored = repo.append_events(&many).await.unwrap();
    assert_eq!(
        stored.iter().map(|e| e.cursor).collect::<Vec<_>>(),
        (1..=1_201).collect::<Vec<i64>>()
    );
    assert_eq!(repo.cursor_bounds(&initech).await.unwrap().last, 1_201);
    // A redelivery is stored once, also twice in one batch; it takes no cursor.
    assert!(
        repo.append_events(&[inbound("acme", a, "message", "Ev1")])
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        repo.append_events(&[
            inbound("acme", b, "message", "Ev1"),
            inbound("acme", b, "message", "Ev1"),
        ])
        .await
        .unwrap()
        .is_empty()
    );
    let mut own = inbound("acme", a, "message", "Ev2");
    own.from_own_bot = true;
    repo.append_events(&[own, inbound("acme", a, "app_mention", "Ev3")])
        .await
        .unwrap();

    // Concurrent appends of one tenant: every cursor taken once, none skipped.
    let mut tasks = Vec::new();
    for i in 0..8 {
        let repo = repo.clone();
        tasks.push(tokio::spawn(async move {
            repo.append_events(&[inbound("acme", a, "reaction_added", &format!("EvC{i}"))])
                .await
                .unwrap()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap().len(), 1);
    }

    let all = |filter: EventFilter, after: Option<i64>| {
        let acme = acme.clone();
        let repo = repo.clone();
        async move {
            repo.list_events(&acme, &filter, after, 100)
                .await
                .unwrap()
                .into_iter()
                .map(|e| e.cursor)
                .collect::<Vec<_>>()
        }
    };
    let everything = EventFilter {
        include_own: true,
        ..EventFilter::default()
    };
    assert_eq!(
        all(everything.clone(), None).await,
        (1..=12).collect::<Vec<_>>()
    );
    assert_eq!(
        all(EventFilter::default(), None).await,
        [1, 2].into_iter().chain(4..=12).collect::<Vec<_>>(),
        "the own bot's message is left out unless asked for"
    );
    assert_eq!(all(everything.clone(), Some(10)).await, vec![11, 12]);
    assert_eq!(
        all(
            EventFilter {
                connector_ids: vec![b],
                ..EventFilter::default()
            },
            None
        )
        .await,
        vec![2]
    );
    assert_eq!(
        all(
            EventFilter {
                types: vec!["app_mention".into(), "nothing".into()],
                ..EventFilter::default()
            },
            None
        )
        .await,
        vec![4]
    );
    let page = repo
        .list_events(&acme, &everything, Some(0), 2)
        .await
        .unwrap();
    assert_eq!(page.len(), 2);
    assert_eq!(page[0].event, first[0].event, "what was stored");

    let bounds = repo.cursor_bounds(&acme).await.unwrap();
    assert_eq!((bounds.oldest_kept, bounds.last), (Some(1), 12));
    assert!(!bounds.lost_after(0));
    // Purged by age: the sequence goes on where it was.
    assert_eq!(
        repo.purge_events_before(chrono::Utc::now() + chrono::Duration::seconds(1))
            .await
            .unwrap(),
        13 + 1_201
    );
    let bounds = repo.cursor_bounds(&acme).await.unwrap();
    assert_eq!((bounds.oldest_kept, bounds.last), (None, 12));
    assert!(bounds.lost_after(5) && !bounds.lost_after(12));
    let next = repo
        .append_events(&[inbound("acme", a, "message", "Ev99")])
        .await
        .unwrap();
    assert_eq!(next[0].cursor, 13);
}

/// A message of `tenant`'s `connector` for `team`'s `channel`, due now, given up in an hour.
fn queued(
    tenant_id: &str,
    connector: ConnectorId,
    team: &str,
    channel: &str,
    request_id: Option<&str>,
) -> connector_ports::NewOutboundMessage {
    let now = chrono::Utc::now();
    connector_ports::NewOutboundMessage {
        id: connector_domain::MessageId::new_v7(),
        tenant_id: tenant(tenant_id),
        connector_id: connector,
        team_id: team.into(),
        channel_id: ChannelId::new(channel),
        request_id: request_id.map(Into::into),
        fingerprint: "f".into(),
        body_json: r#"{"text":"hi"}"#.into(),
        not_before: now - chrono::Duration::seconds(1),
        deadline: now + chrono::Duration::hours(1),
    }
}

/// A pace no test here reaches, unless `channel` says otherwise.
fn pace(channel: connector_domain::Rate) -> connector_domain::Pace {
    connector_domain::Pace {
        channel,
        workspace: connector_domain::Rate::per_second(10_000.0, 10_000).unwrap(),
    }
}

/// Conformance case: the outbox gives each channel's messages out one at a time in order, to
/// one claimer, and only its holder finishes one; a request ID queues once; cancel takes only
/// what is not being posted; expired leases and deadlines end as unknown and failed.
pub async fn the_outbox_gives_out_each_channel_in_order_once<R>(repo: &R)
where
    R: connector_ports::Outbox + Clone + 'static,
{
    use connector_domain::{MessageStatus, Rate};
    use connector_ports::{AttemptOutcome, Cancelled, Enqueued, MessageFilter};
    let fast = pace(Rate::per_second(10_000.0, 10_000).unwrap());
    let lease = Duration::from_secs(30);
    let c = ConnectorId::new_v7();
    let id = |e: Enqueued| match e {
        Enqueued::New(r) => r.id,
        Enqueued::Existing(r) => panic!("queued before: {r:?}"),
    };
    let mut c1 = Vec::new();
    for _ in 0..3 {
        c1.push(id(repo
            .enqueue(&queued("acme", c, "T1", "C1", None))
            .await
            .unwrap()));
    }
    let c2 = id(repo
        .enqueue(&queued("acme", c, "T1", "C2", None))
        .await
        .unwrap());

    // Each channel's head, once.
    let claimed = repo.claim("a", &fast, lease, 10).await.unwrap();
    let mut ids: Vec<_> = claimed.iter().map(|r| r.id).collect();
    ids.sort();
    let mut heads = vec![c1[0], c2];
    heads.sort();
    assert_eq!(ids, heads, "the head of each channel");
    assert!(
        claimed
            .iter()
            .all(|r| r.status == MessageStatus::Sending && r.attempts == 1)
    );
    assert!(repo.claim("b", &fast, lease, 10).await.unwrap().is_empty());

    // Only the holder finishes it; then the next of its channel is given out.
    let sent = AttemptOutcome::Sent { ts: "1.000".into() };
    assert!(!repo.finish(c1[0], "b", &sent).await.unwrap());
    assert!(repo.finish(c1[0], "a", &sent).await.unwrap());
    let acme = tenant("acme");
    let done = repo.get(&acme, c1[0]).await.unwrap().unwrap();
    assert_eq!(done.status, MessageStatus::Sent);
    assert_eq!(done.ts.as_deref(), Some("1.000"));
    assert!(done.finished_at.is_some());
    assert!(repo.get(&tenant("globex"), c1[0]).await.unwrap().is_none());
    let next = repo.claim("b", &fast, lease, 10).await.unwrap();
    assert_eq!(next.iter().map(|r| r.id).collect::<Vec<_>>(), vec![c1[1]]);

    // A retry waits for its time and keeps its place: nothing after it goes first.
    let later = chrono::Utc::now() + chrono::Duration::hours(1);
    let retry = AttemptOutcome::Retry {
        error: "ratelimited".into(),
        retry_at: later,
    };
    assert!(repo.finish(c1[1], "b", &retry).await.unwrap());
    let waiting = repo.get(&acme, c1[1]).await.unwrap().unwrap();
    assert_eq!(waiting.status, MessageStatus::Queued);
    assert_eq!(waiting.last_error.as_deref(), Some("ratelimited"));
    assert!(repo.claim("b", &fast, lease, 10).await.unwrap().is_empty());

    // Cancel: a queued message is cancelled (twice is the same), a sending one is too late.
    assert!(matches!(
        repo.cancel(&acme, c1[2]).await.unwrap(),
        Cancelled::Done(r) if r.status == MessageStatus::Cancelled
    ));
    assert!(matches!(
        repo.cancel(&acme, c1[2]).await.unwrap(),
        Cancelled::Done(_)
    ));
    assert!(matches!(
        repo.cancel(&acme, c2).await.unwrap(),
        Cancelled::TooLate(r) if r.status == MessageStatus::Sending
    ));
    assert!(matches!(
        repo.cancel(&tenant("globex"), c1[1]).await.unwrap(),
        Cancelled::NotFound
    ));

    // A request ID queues once.
    let first = repo
        .enqueue(&queued("acme", c, "T1", "C3", Some("r-1")))
        .await
        .unwrap();
    let Enqueued::New(first) = first else {
        panic!("first")
    };
    match repo
        .enqueue(&queued("acme", c, "T1", "C3", Some("r-1")))
        .await
        .unwrap()
    {
        Enqueued::Existing(r) => assert_eq!(r.id, first.id),
        other => panic!("{other:?}"),
    }

    // A lease that passed mid-post: queued again, its landing to be checked from the time
    // that attempt began, never cancelled.
    let held = repo.claim("c", &fast, Duration::ZERO, 10).await.unwrap();
    assert_eq!(
        held.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![first.id]
    );
    let attempted = held[0]
        .attempted_at
        .expect("a claim records when its attempt began");
    assert_eq!(held[0].unconfirmed_since, None);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let lost = repo.take_over_expired("replica stopped", 10).await.unwrap();
    assert_eq!(
        lost.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![first.id]
    );
    assert_eq!(lost[0].status, MessageStatus::Queued);
    assert_eq!(lost[0].unconfirmed_since, Some(attempted));
    assert_eq!(lost[0].last_error.as_deref(), Some("replica stopped"));
    assert!(!repo.finish(first.id, "c", &sent).await.unwrap(), "fenced");
    assert!(matches!(
        repo.cancel(&acme, first.id).await.unwrap(),
        Cancelled::TooLate(r) if r.status == MessageStatus::Queued && r.unconfirmed_since.is_some()
    ));
    // Claimed again, still its channel's head; an answer lost again keeps the first doubt.
    let again = repo
        .claim("d", &fast, Duration::from_secs(30), 10)
        .await
        .unwrap();
    assert_eq!(
        again.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![first.id]
    );
    assert_eq!(again[0].unconfirmed_since, Some(attempted));
    assert!(again[0].attempted_at.is_some_and(|t| t >= attempted));
    let check_at = chrono::Utc::now() + chrono::Duration::seconds(600);
    let answer_lost = AttemptOutcome::Unconfirmed {
        error: "slack_answer_lost".into(),
        check_at,
    };
    assert!(repo.finish(first.id, "d", &answer_lost,).await.unwrap());
    let doubted = repo.get(&acme, first.id).await.unwrap().unwrap();
    assert_eq!(doubted.status, MessageStatus::Queued);
    assert_eq!(doubted.unconfirmed_since, Some(attempted));
    assert_eq!(doubted.last_error.as_deref(), Some("slack_answer_lost"));
    assert!(
        (doubted.next_attempt_at - check_at)
            .num_milliseconds()
            .abs()
            < 2
    );
    assert!(
        repo.claim("d", &fast, Duration::from_secs(30), 10)
            .await
            .unwrap()
            .is_empty(),
        "not due before its check"
    );

    // Past its deadline: failed with the last error (or deadline_exceeded); one that may have
    // been posted already is unknown.
    let mut unsure = queued("acme", c, "T1", "C5", None);
    unsure.deadline = chrono::Utc::now() + chrono::Duration::milliseconds(300);
    let unsure_id = unsure.id;
    repo.enqueue(&unsure).await.unwrap();
    let claimed = repo
        .claim("d", &fast, Duration::from_secs(30), 10)
        .await
        .unwrap();
    assert_eq!(
        claimed.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![unsure_id]
    );
    assert!(repo.finish(unsure_id, "d", &answer_lost,).await.unwrap());
    let mut late = queued("acme", c, "T1", "C4", None);
    late.deadline = chrono::Utc::now() - chrono::Duration::seconds(1);
    let late_id = late.id;
    repo.enqueue(&late).await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let mut expired = repo.expire(10).await.unwrap();
    expired.sort_by_key(|r| r.status != MessageStatus::Failed);
    assert_eq!(
        expired.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![late_id, unsure_id]
    );
    assert_eq!(expired[0].status, MessageStatus::Failed);
    assert_eq!(expired[0].last_error.as_deref(), Some("deadline_exceeded"));
    assert_eq!(expired[1].status, MessageStatus::Unknown);
    assert_eq!(expired[1].last_error.as_deref(), Some("slack_answer_lost"));

    // Lists: newest first, by status, paged.
    let all = repo
        .list(&acme, &MessageFilter::default(), None, 100)
        .await
        .unwrap();
    assert_eq!(all.len(), 7);
    assert!(all.windows(2).all(|w| w[0].created_at >= w[1].created_at));
    let page = repo
        .list(&acme, &MessageFilter::default(), None, 2)
        .await
        .unwrap();
    let rest = repo
        .list(
            &acme,
            &MessageFilter::default(),
            Some((page[1].created_at, page[1].id)),
            100,
        )
        .await
        .unwrap();
    assert_eq!(
        page.iter()
            .chain(rest.iter())
            .map(|r| r.id)
            .collect::<Vec<_>>(),
        all.iter().map(|r| r.id).collect::<Vec<_>>()
    );
    let cancelled = repo
        .list(
            &acme,
            &MessageFilter {
                connector_id: Some(c),
                statuses: vec![MessageStatus::Cancelled],
            },
            None,
            100,
        )
        .await
        .unwrap();
    assert_eq!(
        cancelled.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![c1[2]]
    );
    let counts = repo.count_by_status().await.unwrap();
    let count = |s| counts.iter().find(|(k, _)| *k == s).map_or(0, |(_, n)| *n);
    assert_eq!(count(MessageStatus::Sent), 1);
    assert_eq!(count(MessageStatus::Queued), 2);
    assert_eq!(count(MessageStatus::Sending), 1);

    // A connector gone: its queued messages fail with the reason; the one that may have been
    // posted is unknown.
    let mut ended = repo.fail_connector(c, "connector_deleted").await.unwrap();
    ended.sort_by_key(|r| r.status != MessageStatus::Failed);
    assert_eq!(
        ended.iter().map(|r| (r.id, r.status)).collect::<Vec<_>>(),
        vec![
            (c1[1], MessageStatus::Failed),
            (first.id, MessageStatus::Unknown)
        ]
    );
    assert!(
        ended
            .iter()
            .all(|r| r.last_error.as_deref() == Some("connector_deleted"))
    );
    assert_eq!(
        repo.purge_finished(chrono::Utc::now() + chrono::Duration::seconds(1))
            .await
            .unwrap(),
        6,
        "everything but the one still sending"
    );
}

/// Conformance case: an immediate send's record is final at once and never claimed; a
/// second record of its request ID replaces it; a queued message's is never replaced.
pub async fn immediate_sends_are_recorded_beside_queued_ones<R>(repo: &R)
where
    R: connector_ports::Outbox + Clone + 'static,
{
    use connector_domain::{Delivery, MessageStatus, Rate};
    use connector_ports::{Enqueued, ImmediateRecord};
    let fast = pace(Rate::per_second(10_000.0, 10_000).unwrap());
    let c = ConnectorId::new_v7();
    let acme = tenant("acme");
    let immediate = |request_id: &str, status, ts: Option<&str>, error: Option<&str>| {
        let mut message = queued("acme", c, "T1", "C1", Some(request_id));
        message.body_json = String::new();
        ImmediateRecord {
            message,
            status,
            ts: ts.map(Into::into),
            last_error: error.map(Into::into),
        }
    };
    assert!(repo.find_by_request(c, "k-1").await.unwrap().is_none());

    // Recorded final: found by ID and by request ID, never given out to post.
    let failed = immediate(
        "k-1",
        MessageStatus::Failed,
        None,
        Some("slack_unavailable"),
    );
    repo.record_immediate(&failed).await.unwrap();
    let found = repo.find_by_request(c, "k-1").await.unwrap().unwrap();
    assert_eq!(found.id, failed.message.id);
    assert_eq!(found.delivery, Delivery::Immediate);
    assert_eq!(found.status, MessageStatus::Failed);
    assert_eq!(found.attempts, 1);
    assert_eq!(found.last_error.as_deref(), Some("slack_unavailable"));
    assert!(found.finished_at.is_some());
    assert_eq!(
        repo.get(&acme, failed.message.id)
            .await
            .unwrap()
            .unwrap()
            .id,
        failed.message.id
    );
    assert!(
        repo.get(&tenant("globex"), failed.message.id)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        repo.claim("a", &fast, Duration::from_secs(30), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        repo.find_by_request(ConnectorId::new_v7(), "k-1")
            .await
            .unwrap()
            .is_none()
    );

    // Tried again with the same request ID and posted: one record, the last.
    let sent = immediate("k-1", MessageStatus::Sent, Some("1.000"), None);
    repo.record_immediate(&sent).await.unwrap();
    let found = repo.find_by_request(c, "k-1").await.unwrap().unwrap();
    assert_eq!(found.id, sent.message.id);
    assert_eq!(found.status, MessageStatus::Sent);
    assert_eq!(found.ts.as_deref(), Some("1.000"));
    assert!(repo.get(&acme, failed.message.id).await.unwrap().is_none());

    // A queued message keeps its request ID: an immediate record does not replace it.
    let Enqueued::New(queued_one) = repo
        .enqueue(&queued("acme", c, "T1", "C2", Some("k-2")))
        .await
        .unwrap()
    else {
        panic!("first enqueue")
    };
    repo.record_immediate(&immediate("k-2", MessageStatus::Sent, Some("2.000"), None))
        .await
        .unwrap();
    let found = repo.find_by_request(c, "k-2").await.unwrap().unwrap();
    assert_eq!(found.id, queued_one.id);
    assert_eq!(found.delivery, Delivery::Queued);
    assert_eq!(found.status, MessageStatus::Queued);
}

/// Conformance case: the budgets pace every claimer together: a channel's burst, then one per
/// interval; a pause holds the channel; immediate sends spend the same budget.
pub async fn the_outbox_paces_channels_with_one_shared_budget<R>(repo: &R)
where
    R: connector_ports::Outbox + Clone + 'static,
{
    use connector_domain::Rate;
    use connector_ports::{AttemptOutcome, PauseScope};
    // Two a burst, then one an hour: the third waits.
    let slow = pace(Rate::per_second(1.0 / 3600.0, 2).unwrap());
    let lease = Duration::from_secs(30);
    let c = ConnectorId::new_v7();
    for _ in 0..3 {
        repo.enqueue(&queued("acme", c, "T9", "C1", None))
            .await
            .unwrap();
    }
    let sent = AttemptOutcome::Sent { ts: "1.0".into() };
    for owner in ["a", "b"] {
        let got = repo.claim(owner, &slow, lease, 10).await.unwrap();
        assert_eq!(got.len(), 1, "within the burst");
        assert!(repo.finish(got[0].id, owner, &sent).await.unwrap());
    }
    assert!(
        repo.claim("a", &slow, lease, 10).await.unwrap().is_empty(),
        "the burst is spent, for every claimer"
    );
    let wait = repo
        .spend("T9", &ChannelId::new("C1"), &slow)
        .await
        .unwrap()
        .expect("an immediate send waits too");
    assert!(wait > Duration::from_secs(3000), "{wait:?}");
    // Another channel has its own budget, until the workspace is paused.
    let fast = pace(Rate::per_second(10_000.0, 10_000).unwrap());
    assert_eq!(
        repo.spend("T9", &ChannelId::new("C2"), &fast)
            .await
            .unwrap(),
        None
    );
    repo.pause(
        &PauseScope::Workspace {
            team_id: "T9".into(),
        },
        Duration::from_secs(60),
    )
    .await
    .unwrap();
    repo.enqueue(&queued("acme", c, "T9", "C2", None))
        .await
        .unwrap();
    assert!(repo.claim("a", &fast, lease, 10).await.unwrap().is_empty());
    assert!(
        repo.spend("T9", &ChannelId::new("C2"), &fast)
            .await
            .unwrap()
            .is_some_and(|w| w > Duration::from_secs(50))
    );
    // What was spent or paused is in use, for immediate sends to spend from too.
    let busy = repo.busy_scopes(Duration::from_secs(2)).await.unwrap();
    for scope in [
        PauseScope::Workspace {
            team_id: "T9".into(),
        },
        PauseScope::Channel {
            team_id: "T9".into(),
            channel_id: ChannelId::new("C1"),
        },
        PauseScope::Channel {
            team_id: "T9".into(),
            channel_id: ChannelId::new("C2"),
        },
    ] {
        assert!(busy.contains(&scope), "{scope:?} in {busy:?}");
    }
    assert!(
        !busy
            .iter()
            .any(|s| matches!(s, PauseScope::Workspace { team_id } if team_id == "T-quiet")),
        "a workspace nothing was spent from is not in use"
    );
}

/// Conformance case: the store says when a spent budget admits a post again (what a worker
/// that found nothing to claim waits for): the channel's, or its paused workspace's, the
/// earliest of all; nothing when no budget refuses.
pub async fn a_spent_budget_says_when_it_admits_again<R>(repo: &R)
where
    R: connector_ports::Outbox + Clone + 'static,
{
    use connector_domain::Rate;
    use connector_ports::PauseScope;
    // One a second, bursts of two: after two posts the next is admitted a second later.
    let second = pace(Rate::per_second(1.0, 2).unwrap());
    let c1 = ChannelId::new("C1");
    assert_eq!(repo.next_admission(&second).await.unwrap(), None);
    for _ in 0..2 {
        assert_eq!(repo.spend("T3", &c1, &second).await.unwrap(), None);
    }
    let refused = repo
        .spend("T3", &c1, &second)
        .await
        .unwrap()
        .expect("the burst is spent");
    let admits = repo
        .next_admission(&second)
        .await
        .unwrap()
        .expect("a budget refuses");
    assert!(
        admits <= refused && admits > Duration::from_millis(200),
        "{admits:?} (refused for {refused:?})"
    );
    // Its workspace paused for a minute: the channel waits for that too.
    repo.pause(
        &PauseScope::Workspace {
            team_id: "T3".into(),
        },
        Duration::from_secs(60),
    )
    .await
    .unwrap();
    let admits = repo.next_admission(&second).await.unwrap().unwrap();
    assert!(
        admits > Duration::from_secs(50) && admits <= Duration::from_secs(60),
        "{admits:?}"
    );
    // A channel of another workspace, spent: the earlier of the two.
    for _ in 0..2 {
        assert_eq!(repo.spend("T4", &c1, &second).await.unwrap(), None);
    }
    let admits = repo.next_admission(&second).await.unwrap().unwrap();
    assert!(admits <= Duration::from_secs(1), "{admits:?}");
}

/// Conformance case: a 429 pauses its channel; a 429 in a second channel of the workspace
/// while the first is paused pauses the whole workspace (Slack does not say which limit a 429
/// concerns); concurrent 429s see each other; other workspaces go on.
pub async fn a_429_in_two_channels_at_once_pauses_the_workspace<R>(repo: &R)
where
    R: connector_ports::Outbox + Clone + 'static,
{
    use connector_domain::Rate;
    use connector_ports::PauseScope;
    let fast = pace(Rate::per_second(10_000.0, 10_000).unwrap());
    let channel = |team: &str, c: &str| PauseScope::Channel {
        team_id: team.into(),
        channel_id: ChannelId::new(c),
    };
    let minute = Duration::from_secs(60);
    assert_eq!(
        repo.pause(&channel("T7", "C1"), minute).await.unwrap(),
        channel("T7", "C1"),
        "one channel's 429 is the channel's"
    );
    // A channel of another workspace whose ID starts alike is not a sibling.
    repo.pause(&channel("T77", "C1"), minute).await.unwrap();
    assert_eq!(
        repo.spend("T7", &ChannelId::new("C2"), &fast)
            .await
            .unwrap(),
        None,
        "the workspace's other channels go on"
    );
    assert_eq!(
        repo.pause(&channel("T7", "C2"), minute).await.unwrap(),
        PauseScope::Workspace {
            team_id: "T7".into()
        },
        "a second channel's 429 meanwhile is the workspace's"
    );
    assert!(
        repo.spend("T7", &ChannelId::new("C3"), &fast)
            .await
            .unwrap()
            .is_some_and(|w| w > Duration::from_secs(50)),
        "every channel of the workspace waits"
    );
    assert_eq!(
        repo.spend("T8", &ChannelId::new("C3"), &fast)
            .await
            .unwrap(),
        None,
        "another workspace does not"
    );
    // Two channels' first 429s at the same moment: whichever is recorded second widens.
    let (a, b) = (repo.clone(), repo.clone());
    let first = tokio::spawn(async move { a.pause(&channel("T6", "C1"), minute).await.unwrap() });
    let second = tokio::spawn(async move {
        b.pause(&channel("T6", "C2"), Duration::from_secs(60))
            .await
            .unwrap()
    });
    let paused = [first.await.unwrap(), second.await.unwrap()];
    assert!(
        paused.contains(&PauseScope::Workspace {
            team_id: "T6".into()
        }),
        "{paused:?}"
    );
}

/// Conformance case: claimers racing over many channels never take one message twice, and
/// never two of one channel at once.
pub async fn concurrent_outbox_claims_take_each_message_once<R>(repo: &R)
where
    R: connector_ports::Outbox + Clone + 'static,
{
    use connector_domain::Rate;
    let fast = pace(Rate::per_second(10_000.0, 10_000).unwrap());
    let c = ConnectorId::new_v7();
    for ch in 0..10 {
        for _ in 0..3 {
            repo.enqueue(&queued("acme", c, "T5", &format!("C{ch}"), None))
                .await
                .unwrap();
        }
    }
    let mut tasks = Vec::new();
    for owner in 0..4 {
        let repo = repo.clone();
        tasks.push(tokio::spawn(async move {
            repo.claim(&format!("o{owner}"), &fast, Duration::from_secs(30), 10)
                .await
                .unwrap()
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let mut channels: Vec<_> = all.iter().map(|r| r.channel_id.to_string()).collect();
    channels.sort();
    channels.dedup();
    assert_eq!(channels.len(), all.len(), "one per channel: {all:?}");
    assert_eq!(all.len(), 10, "every channel's head");
}
