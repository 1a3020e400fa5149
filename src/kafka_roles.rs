//! The Kafka roles: `ingest` (HTTP → Kafka) and `aggregate` (Kafka → PostgreSQL).

use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::RoleOptions;

/// `mieruka ingest`: the HTTP receiver producing to Kafka.
pub async fn run_ingest(
    _cfg: &Config,
    _opts: RoleOptions,
    _shutdown: CancellationToken,
) -> anyhow::Result<()> {
    anyhow::bail!("the ingest role is being built; run `mieruka standalone` meanwhile")
}

/// `mieruka aggregate`: the Kafka consumer folding into PostgreSQL.
pub async fn run_aggregate(
    _cfg: &Config,
    _opts: RoleOptions,
    _shutdown: CancellationToken,
) -> anyhow::Result<()> {
    anyhow::bail!("the aggregate role is being built; run `mieruka standalone` meanwhile")
}
