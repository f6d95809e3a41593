//! Running a pipeline: on one worker (the executor, `exec`), or split across worker threads and
//! processes (`distributed`, feature `timely`).

use crate::exec::{run_share, Pipeline, RunConfig};
use crate::io::Share;
use crate::summary::Summary;
#[cfg(not(feature = "timely"))]
use crate::Error;
use crate::Result;

/// Runs a pipeline to the end on the calling thread (segments get threads of their own) and
/// returns its summary. Sink outputs are committed (renamed into place) only if every segment
/// ended well. With more than one worker (`config.cluster`), the run is split across them on
/// timely dataflow (feature `timely`).
pub fn run_pipeline<P: Pipeline>(args: &P::Args, config: &RunConfig) -> Result<Summary> {
    if !config.cluster.is_single() {
        return run_split::<P>(args, config);
    }
    run_share::<P>(args, config, Share::WHOLE, None)?.commit()
}

#[cfg(feature = "timely")]
fn run_split<P: Pipeline>(args: &P::Args, config: &RunConfig) -> Result<Summary> {
    crate::distributed::run_job::<P>(args, config)
}

#[cfg(not(feature = "timely"))]
fn run_split<P: Pipeline>(_: &P::Args, config: &RunConfig) -> Result<Summary> {
    let cluster = &config.cluster;
    Err(Error::Config(format!(
        "--workers {} --processes {}: this program was built without tandem's `timely` feature, \
         so it runs on one worker only (add `features = [\"timely\"]` to the tandem dependency)",
        cluster.workers, cluster.processes
    )))
}

/// [`run_pipeline`] for async callers: the run happens on tokio's blocking pool.
pub async fn run_async<P: Pipeline>(args: P::Args, config: RunConfig) -> Result<Summary>
where
    P::Args: Send + 'static,
{
    tokio::task::spawn_blocking(move || run_pipeline::<P>(&args, &config))
        .await
        .map_err(|e| crate::Error::Internal(e.to_string()))?
}
