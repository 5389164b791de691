//! Dependencies in containers, started by testcontainers on the Docker engine that
//! `scripts/test.sh` provisions (`ensure_docker` in `scripts/lib.sh`): PostgreSQL and a
//! Secrets Manager emulator, each test suite with its own, on random host ports.
//!
//! The images come from `SC_TEST_PG_IMAGE` and `SC_TEST_SECRETS_IMAGE` (`name:tag`), which
//! the script sets: locally built images by default (no registry needed), or the official
//! `postgres:15` and `localstack/localstack:4` with `SC_TEST_IMAGES=official`. Every
//! container carries the label `slack-connector.test`, so the script can remove any a killed
//! test process left behind. Without an engine a test fails saying so: never a silent skip.

use std::time::Duration;

use anyhow::Context as _;
use testcontainers::core::{IntoContainerPort as _, WaitFor};
use testcontainers::runners::AsyncRunner as _;
use testcontainers::{ContainerAsync, GenericImage, ImageExt as _};
use testcontainers_modules::postgres::Postgres;

/// The label every test container carries.
pub const LABEL: &str = "slack-connector.test";

const HOW_TO_PROVIDE: &str = "the Docker engine and the images come from `scripts/test.sh` \
     (ensure_docker in scripts/lib.sh installs and starts an engine and builds the images; with \
     a Docker that already answers, SC_TEST_IMAGES=official uses the registry's images)";

fn image_from_env(var: &str, default: &str) -> (String, String) {
    let image = std::env::var(var).unwrap_or_else(|_| default.to_owned());
    match image.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => (name.to_owned(), tag.to_owned()),
        _ => (image, "latest".to_owned()),
    }
}

/// A PostgreSQL server in a container, removed when dropped.
pub struct PgContainer {
    container: ContainerAsync<Postgres>,
    admin_url: String,
}

impl std::fmt::Debug for PgContainer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgContainer")
            .field("id", &self.container.id())
            .field("admin_url", &self.admin_url)
            .finish()
    }
}

impl PgContainer {
    /// Starts one and waits until it accepts connections.
    pub async fn start() -> anyhow::Result<Self> {
        let (name, tag) = image_from_env("SC_TEST_PG_IMAGE", "slack-connector-test/postgres:15");
        // A fixed host port: a container put back on the network after a cut keeps it.
        let (container, host_port) = on_a_free_port(|host_port| {
            Postgres::default()
                .with_name(&name)
                .with_tag(&tag)
                .with_mapped_port(host_port, 5432.tcp())
                .with_label(LABEL, "postgres")
                .with_startup_timeout(Duration::from_secs(60))
                .start()
        })
        .await
        .with_context(|| {
            format!("starting a PostgreSQL container from {name}:{tag}; {HOW_TO_PROVIDE}")
        })?;
        let admin_url = format!("postgres://postgres:postgres@127.0.0.1:{host_port}/postgres");
        Ok(Self {
            container,
            admin_url,
        })
    }

    /// The superuser URL of its `postgres` database.
    pub fn admin_url(&self) -> &str {
        &self.admin_url
    }

    /// The container's ID, for `docker` commands.
    pub fn id(&self) -> &str {
        self.container.id()
    }

    /// Freezes every process of the container (`docker pause`): connections stay open and
    /// nothing answers.
    pub async fn pause(&self) -> anyhow::Result<()> {
        Ok(self.container.pause().await?)
    }

    /// Thaws it.
    pub async fn unpause(&self) -> anyhow::Result<()> {
        Ok(self.container.unpause().await?)
    }

    /// Stops the server as an operator's `docker stop` would: a fast shutdown (every backend
    /// ends with SQLSTATE 57P01); its port then refuses connections. The data stays.
    pub async fn stop(&self) -> anyhow::Result<()> {
        Ok(self.container.stop_with_timeout(Some(10)).await?)
    }

    /// Starts it again on the same host port with the same data; returns once the container
    /// runs (the server inside may still be starting).
    pub async fn start_again(&self) -> anyhow::Result<()> {
        Ok(self.container.start().await?)
    }
}

/// A Secrets Manager emulator in a container, removed when dropped.
pub struct SecretsContainer {
    container: ContainerAsync<GenericImage>,
    endpoint: String,
}

impl std::fmt::Debug for SecretsContainer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretsContainer")
            .field("id", &self.container.id())
            .field("endpoint", &self.endpoint)
            .finish()
    }
}

impl SecretsContainer {
    /// Starts one (moto, or LocalStack when the image says so) and waits until it serves.
    pub async fn start() -> anyhow::Result<Self> {
        let (name, tag) =
            image_from_env("SC_TEST_SECRETS_IMAGE", "slack-connector-test/moto:5.2.5");
        let (port, ready) = if name.contains("localstack") {
            (4566, WaitFor::message_on_stdout("Ready."))
        } else {
            (5000, WaitFor::message_on_stderr("Running on"))
        };
        let (container, host_port) = on_a_free_port(|host_port| {
            GenericImage::new(&name, &tag)
                .with_exposed_port(port.tcp())
                .with_wait_for(ready.clone())
                .with_mapped_port(host_port, port.tcp())
                .with_env_var("SERVICES", "secretsmanager")
                .with_label(LABEL, "secrets")
                .with_startup_timeout(Duration::from_secs(60))
                .start()
        })
        .await
        .with_context(|| {
            format!("starting a Secrets Manager container from {name}:{tag}; {HOW_TO_PROVIDE}")
        })?;
        Ok(Self {
            container,
            endpoint: format!("http://127.0.0.1:{host_port}"),
        })
    }

    /// Its endpoint URL.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Freezes it (`docker pause`).
    pub async fn pause(&self) -> anyhow::Result<()> {
        Ok(self.container.pause().await?)
    }

    /// Thaws it.
    pub async fn unpause(&self) -> anyhow::Result<()> {
        Ok(self.container.unpause().await?)
    }

    /// Stops it (`docker stop`, at once): its port refuses connections; what it held is gone
    /// (the emulator keeps nothing on disk).
    pub async fn stop(&self) -> anyhow::Result<()> {
        Ok(self.container.stop_with_timeout(Some(0)).await?)
    }

    /// Starts it again on the same host port.
    pub async fn start_again(&self) -> anyhow::Result<()> {
        Ok(self.container.start().await?)
    }
}

/// A loopback port free at the moment (bound, then released).
/// Starts a container on a free host port, trying another when Docker says the port is taken:
/// Docker's own port bookkeeping may hold a port the kernel calls free (no proxy bound to it),
/// so two tests can pick the same one.
async fn on_a_free_port<T, E, F, Fut>(start: F) -> anyhow::Result<(T, u16)>
where
    F: Fn(u16) -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
    E: std::error::Error + Send + Sync + 'static,
{
    let mut attempt = 0;
    loop {
        attempt += 1;
        let port = free_port()?;
        match start(port).await {
            Ok(started) => return Ok((started, port)),
            Err(e) if attempt < 5 && format!("{e} {e:?}").contains("port is already allocated") => {
            }
            Err(e) => return Err(e.into()),
        }
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Cuts container `id` off the default bridge network (`docker network disconnect`): its
/// published ports stop answering, open connections hang.
pub async fn disconnect(id: &str) -> anyhow::Result<()> {
    docker(&["network", "disconnect", "bridge", id]).await
}

/// Puts container `id` back on the default bridge network.
pub async fn reconnect(id: &str) -> anyhow::Result<()> {
    docker(&["network", "connect", "bridge", id]).await
}

async fn docker(args: &[&str]) -> anyhow::Result<()> {
    let out = tokio::process::Command::new("docker")
        .args(args)
        .output()
        .await
        .with_context(|| format!("running docker {}", args.join(" ")))?;
    anyhow::ensure!(
        out.status.success(),
        "docker {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(())
}
