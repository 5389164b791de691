//! TLS and mutual TLS on the gRPC listener: clients without a certificate, with one from
//! another CA, or in plain text are refused; the tenant comes from the certificate's URI; the
//! certificate files are reloaded without a restart.

use std::path::{Path, PathBuf};
use std::time::Duration;

use connector_grpc_api::pb::{self, connector_service_client::ConnectorServiceClient};
use connector_server::Application;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair, KeyUsagePurpose, SanType,
};
use test_support::TestDatabase;
use tonic::Code;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

use crate::helpers::{TOKEN, create_request, double, settings};

const TENANT_URI: &str = "spiffe://mesh.test/tenant/{tenant}";

/// A CA that issues server and client certificates.
struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        Self {
            issuer: CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap(),
        }
    }

    fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A leaf certificate and its key, PEM.
    fn leaf(&self, dns: &[&str], uri: Option<&str>) -> (String, String) {
        let mut params =
            CertificateParams::new(dns.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
                .unwrap();
        if let Some(uri) = uri {
            params
                .subject_alt_names
                .push(SanType::URI(uri.try_into().unwrap()));
        }
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

fn write(dir: &Path, name: &str, pem: &str) -> PathBuf {
    let path = dir.join(name);
    // Replace atomically, as a certificate manager does.
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, pem).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    path
}

struct TlsApp {
    addr: std::net::SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<anyhow::Result<()>>,
    _db: TestDatabase,
    _double: slack_double::SlackDouble,
}

async fn start(extra: &[(&str, &str)]) -> TlsApp {
    test_support::require_localstack().await.unwrap();
    let db = TestDatabase::create().await.unwrap();
    let double = double().await;
    let prefix = format!("tls-{}/", uuid::Uuid::new_v4().simple());
    let app = Application::build(settings(&db, &double.api_base_url(), &prefix, extra))
        .await
        .unwrap();
    let addr = app.grpc_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async {
        let _ = stopped.await;
    }));
    TlsApp {
        addr,
        stop,
        server,
        _db: db,
        _double: double,
    }
}

impl TlsApp {
    async fn stop(self) {
        let _ = self.stop.send(());
        self.server.await.unwrap().unwrap();
    }

    /// A client trusting `ca`, presenting `identity`; `Err` when the connection fails.
    async fn client(
        &self,
        ca: &str,
        identity: Option<&(String, String)>,
    ) -> Result<ConnectorServiceClient<Channel>, tonic::transport::Error> {
        let mut tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(ca))
            .domain_name("localhost");
        if let Some((cert, key)) = identity {
            tls = tls.identity(Identity::from_pem(cert, key));
        }
        let channel = Channel::from_shared(format!("https://localhost:{}", self.addr.port()))
            .unwrap()
            .tls_config(tls)?
            .connect()
            .await?;
        Ok(ConnectorServiceClient::new(channel))
    }
}

/// Whether a client can make a call: a refused handshake shows either at connect or at the
/// first call (with TLS 1.3 the server checks the client's certificate after the client
/// thinks the handshake is done).
async fn refused(client: Result<ConnectorServiceClient<Channel>, tonic::transport::Error>) -> bool {
    match client {
        Err(_) => true,
        Ok(mut c) => c
            .list_connectors(pb::ListConnectorsRequest::default())
            .await
            .is_err_and(|s| s.code() == Code::Unavailable || s.code() == Code::Unknown),
    }
}

#[tokio::test]
async fn mutual_tls_takes_the_tenant_from_the_certificate_and_refuses_strangers() {
    let dir = tempdir();
    let ca = Ca::new("connector test CA");
    let (server_cert, server_key) = ca.leaf(&["localhost"], None);
    let cert = write(&dir, "server.pem", &server_cert);
    let key = write(&dir, "server.key", &server_key);
    let client_ca = write(&dir, "clients.pem", &ca.pem());
    let (cert, key, client_ca) = (
        cert.to_string_lossy().into_owned(),
        key.to_string_lossy().into_owned(),
        client_ca.to_string_lossy().into_owned(),
    );
    let app = start(&[
        ("CONNECTOR__AUTH__MODE", "mtls"),
        ("CONNECTOR__AUTH__MTLS_TENANT_URI", TENANT_URI),
        ("CONNECTOR__GRPC__TLS_CERT_FILE", &cert),
        ("CONNECTOR__GRPC__TLS_KEY_FILE", &key),
        ("CONNECTOR__GRPC__TLS_CLIENT_CA_FILE", &client_ca),
    ])
    .await;

    // A workload of tenant acme.
    let acme = ca.leaf(&[], Some("spiffe://mesh.test/tenant/acme"));
    let mut client = app.client(&ca.pem(), Some(&acme)).await.unwrap();
    let created = client
        .create_connector(create_request("", "prod", TOKEN, "#alerts", ""))
        .await
        .unwrap()
        .into_inner()
        .connector
        .unwrap();
    assert_eq!(created.tenant_id, "acme");
    let denied = client
        .create_connector(create_request("globex", "prod", TOKEN, "#alerts", ""))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied, "{denied:?}");

    // A certificate of this CA that names no tenant.
    let anonymous = ca.leaf(&[], Some("spiffe://elsewhere/workload"));
    let mut client = app.client(&ca.pem(), Some(&anonymous)).await.unwrap();
    let s = client
        .list_connectors(pb::ListConnectorsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::Unauthenticated, "{s:?}");
    assert!(s.message().contains("names no tenant"), "{}", s.message());

    // No certificate; a certificate from another CA; plain text.
    assert!(
        refused(app.client(&ca.pem(), None).await).await,
        "no client certificate"
    );
    let stranger = Ca::new("another CA").leaf(&[], Some("spiffe://mesh.test/tenant/acme"));
    assert!(
        refused(app.client(&ca.pem(), Some(&stranger)).await).await,
        "a certificate from another CA"
    );
    let plain = ConnectorServiceClient::connect(format!("http://{}", app.addr)).await;
    assert!(refused(plain).await, "plain text");
    app.stop().await;
}

#[tokio::test]
async fn certificate_files_are_reloaded_without_a_restart() {
    let dir = tempdir();
    let old_ca = Ca::new("old CA");
    let (c, k) = old_ca.leaf(&["localhost"], None);
    let cert = write(&dir, "server.pem", &c).to_string_lossy().into_owned();
    let key = write(&dir, "server.key", &k).to_string_lossy().into_owned();
    let app = start(&[
        ("CONNECTOR__GRPC__TLS_CERT_FILE", &cert),
        ("CONNECTOR__GRPC__TLS_KEY_FILE", &key),
        ("CONNECTOR__GRPC__TLS_RELOAD_SECS", "1"),
    ])
    .await;
    let mut client = app.client(&old_ca.pem(), None).await.unwrap();
    client
        .list_connectors(pb::ListConnectorsRequest {
            tenant_id: "acme".into(),
            ..Default::default()
        })
        .await
        .unwrap();

    // The certificate manager renews: a new key and a certificate from a new CA.
    let new_ca = Ca::new("new CA");
    let (c, k) = new_ca.leaf(&["localhost"], None);
    write(&dir, "server.key", &k);
    write(&dir, "server.pem", &c);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(mut c) = app.client(&new_ca.pem(), None).await
            && c.list_connectors(pb::ListConnectorsRequest {
                tenant_id: "acme".into(),
                ..Default::default()
            })
            .await
            .is_ok()
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the new certificate was never served"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        app.client(&old_ca.pem(), None).await.is_err(),
        "the old certificate is still served"
    );
    app.stop().await;
}

fn tempdir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sc-tls-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test]
async fn unreadable_certificate_files_stop_start_up_naming_the_setting() {
    test_support::require_localstack().await.unwrap();
    let db = TestDatabase::create().await.unwrap();
    let dir = tempdir();
    let key = write(&dir, "server.key", "not a key")
        .to_string_lossy()
        .into_owned();
    let err = Application::build(settings(
        &db,
        "http://127.0.0.1:9/api/",
        "tls-bad/",
        &[
            ("CONNECTOR__GRPC__TLS_CERT_FILE", "/nonexistent/server.pem"),
            ("CONNECTOR__GRPC__TLS_KEY_FILE", &key),
        ],
    ))
    .await
    .unwrap_err();
    let shown = format!("{err:#}");
    assert!(shown.contains("CONNECTOR__GRPC__TLS_CERT_FILE"), "{shown}");
    assert!(shown.contains("/nonexistent/server.pem"), "{shown}");
}

#[tokio::test]
async fn connections_that_never_finish_a_handshake_cannot_hold_more_than_their_share() {
    use tokio::io::AsyncReadExt as _;
    let dir = tempdir();
    let ca = Ca::new("handshake CA");
    let (c, k) = ca.leaf(&["localhost"], None);
    let cert = write(&dir, "server.pem", &c).to_string_lossy().into_owned();
    let key = write(&dir, "server.key", &k).to_string_lossy().into_owned();
    let app = start(&[
        ("CONNECTOR__GRPC__TLS_CERT_FILE", &cert),
        ("CONNECTOR__GRPC__TLS_KEY_FILE", &key),
    ])
    .await;
    // 256 clients connect and never say a word: every handshake slot is taken.
    let mut silent = Vec::new();
    for _ in 0..256 {
        silent.push(tokio::net::TcpStream::connect(app.addr).await.unwrap());
    }
    // The next one is closed at once (the listener accepts in order, so the 256 came first).
    let mut next = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(5), next.read(&mut buf))
        .await
        .expect("a connection beyond the handshake cap was held open")
        .unwrap_or(0);
    assert_eq!(n, 0);
    // Once they are gone, clients are served again.
    drop(silent);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(mut client) = app.client(&ca.pem(), None).await
            && client
                .list_connectors(pb::ListConnectorsRequest {
                    tenant_id: "acme".into(),
                    ..Default::default()
                })
                .await
                .is_ok()
        {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "never served again");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    app.stop().await;
}
