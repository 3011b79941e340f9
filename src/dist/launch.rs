//! The ranks this process runs with, and the checks at launch: `srun -n N cnn-tui train ...`
//! and `mpirun -n N cnn-tui train ...` take the same command as one process.

use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use super::{Collective, Local};
use crate::error::{Error, Result};

/// What the ranks agreed on at launch ([`Ranks::agree`]).
pub(crate) struct Agreed {
    /// Rank 0's run directory (its name may hold the time it started).
    pub(crate) run_dir: PathBuf,
    /// Whether a divergence pauses the run (rank 0 shows a dashboard) or ends it.
    pub(crate) pause_on_divergence: bool,
    /// A signal reached some rank before training started.
    pub(crate) interrupted: bool,
}

/// Seconds a rank waits in one gather before the watchdog ends the job (a rank died or
/// hangs); `CNN_TUI_MPI_WATCHDOG` changes it.
const WATCHDOG_SECONDS: u64 = 20;

/// This process's place among the ranks of the run.
pub(crate) struct Ranks {
    rank: usize,
    ranks: usize,
    #[cfg(feature = "mpi")]
    runtime: Option<super::mpi::Runtime>,
}

/// The number of tasks a launcher started, when one did: Slurm's step, else `mpirun`'s.
fn launched_tasks() -> Option<usize> {
    let var = |name: &str| std::env::var(name).ok().and_then(|v| v.trim().parse().ok());
    if std::env::var_os("SLURM_STEP_ID").is_some() {
        return var("SLURM_STEP_NUM_TASKS").or_else(|| var("SLURM_NTASKS"));
    }
    var("OMPI_COMM_WORLD_SIZE")
        .or_else(|| var("PMI_SIZE"))
        .or_else(|| var("PMIX_SIZE"))
}

impl Ranks {
    /// One rank, or MPI's ranks when this build has MPI and a launcher started the process.
    /// A launch of several tasks that MPI sees as one rank each is refused (they would all
    /// train alone and write the same run directory).
    pub(crate) fn start() -> Result<Ranks> {
        let tasks = launched_tasks();
        let ranks = Self::start_mpi(tasks.is_some())?;
        if let Some(n) = tasks
            && n > 1
            && ranks.ranks == 1
        {
            let how = if cfg!(feature = "mpi") {
                "MPI sees one rank: the MPI library lacks Slurm support, or srun used another PMI; start it with `srun --mpi=pmix` (Open MPI) or `mpirun -n N`"
            } else {
                "this cnn-tui was built without MPI: build it with `cargo build --release --features mpi`, or start one task"
            };
            return Err(Error::config(
                "launch",
                format!("{n} tasks were started, but {how}"),
            ));
        }
        Ok(ranks)
    }

    #[cfg(feature = "mpi")]
    fn start_mpi(launched: bool) -> Result<Ranks> {
        if !launched {
            return Ok(Ranks {
                rank: 0,
                ranks: 1,
                runtime: None,
            });
        }
        let limit = std::env::var("CNN_TUI_MPI_WATCHDOG")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(WATCHDOG_SECONDS);
        let runtime = super::mpi::init(std::time::Duration::from_secs(limit))
            .map_err(|e| Error::config("MPI", e))?;
        Ok(Ranks {
            rank: runtime.rank(),
            ranks: runtime.ranks(),
            runtime: Some(runtime),
        })
    }

    #[cfg(not(feature = "mpi"))]
    fn start_mpi(_launched: bool) -> Result<Ranks> {
        let _ = WATCHDOG_SECONDS;
        Ok(Ranks { rank: 0, ranks: 1 })
    }

    pub(crate) fn rank(&self) -> usize {
        self.rank
    }

    pub(crate) fn ranks(&self) -> usize {
        self.ranks
    }

    /// What the ranks' communication cost, for the log (several ranks only).
    pub(crate) fn summary(&self) -> Option<String> {
        #[cfg(feature = "mpi")]
        if let Some(r) = &self.runtime
            && r.ranks() > 1
        {
            return r.summary();
        }
        None
    }

    /// Ends every rank of the job now (after an error on this one that the others cannot know
    /// of: they would wait for it for ever).
    pub(crate) fn abort(&self, code: i32) -> ! {
        #[cfg(feature = "mpi")]
        if self.runtime.is_some() {
            super::mpi::abort(code);
        }
        std::process::exit(code)
    }

    /// The ranks, for the training thread.
    pub(crate) fn collective(&self) -> Box<dyn Collective> {
        #[cfg(feature = "mpi")]
        if let Some(r) = &self.runtime {
            return Box::new(r.world());
        }
        Box::new(Local)
    }

    /// What every rank goes on with, from each rank's view at launch: rank 0's run directory
    /// and divergence handling, whether a signal reached any rank, and a check that all ranks
    /// resume from the same step (the run directory must be one that every node sees).
    pub(crate) fn agree(
        &self,
        run_dir: &Path,
        dashboard: bool,
        interrupted: bool,
        resumed_at: Option<u64>,
    ) -> Result<Agreed> {
        let mut agreed = Agreed {
            run_dir: run_dir.to_path_buf(),
            pause_on_divergence: dashboard,
            interrupted,
        };
        if self.ranks == 1 {
            return Ok(agreed);
        }
        let step = resumed_at.map_or(u64::MAX, |s| s);
        let path = run_dir.as_os_str().as_bytes();
        let mut words = vec![
            u32::from(dashboard),
            u32::from(interrupted),
            step as u32,
            (step >> 32) as u32,
            path.len() as u32,
        ];
        words.extend(path.chunks(4).map(|c| {
            let mut b = [0u8; 4];
            b[..c.len()].copy_from_slice(c);
            u32::from_le_bytes(b)
        }));
        let all = self.collective().all_gather(&words);
        let step_of = |w: &[u32]| w[2] as u64 | (w[3] as u64) << 32;
        let first = &all[0];
        for (rank, w) in all.iter().enumerate() {
            agreed.interrupted |= w[1] != 0;
            if step_of(w) != step_of(first) {
                let at = |s: u64| match s {
                    u64::MAX => "a fresh start".to_string(),
                    s => format!("the checkpoint of step {s}"),
                };
                return Err(Error::config(
                    "--resume",
                    format!(
                        "rank 0 resumes from {} but rank {rank} from {}: the run directory must be on a file system that every node sees",
                        at(step_of(first)),
                        at(step_of(w))
                    ),
                ));
            }
        }
        agreed.pause_on_divergence = first[0] != 0;
        let len = first[4] as usize;
        let mut bytes: Vec<u8> = first[5..].iter().flat_map(|w| w.to_le_bytes()).collect();
        bytes.truncate(len);
        agreed.run_dir = PathBuf::from(std::ffi::OsString::from_vec(bytes));
        Ok(agreed)
    }

    /// Worker threads for this rank when `--threads` is not given: Slurm's `--cpus-per-task`,
    /// else this node's cores shared among the ranks on it (as `mpirun --bind-to none` leaves
    /// them; a rank bound to one core sees one); `None`: all cores, as for one process.
    pub(crate) fn default_threads(&self) -> Option<usize> {
        let var = |name: &str| {
            std::env::var(name)
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok())
                .filter(|&n| n > 0)
        };
        if let Some(n) = var("SLURM_CPUS_PER_TASK") {
            return Some(n);
        }
        let local = var("OMPI_COMM_WORLD_LOCAL_SIZE").or_else(|| var("MPI_LOCALNRANKS"))?;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        (self.ranks > 1).then_some((cores / local).max(1))
    }
}
