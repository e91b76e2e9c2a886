//! Password hashing with argon2id, bounded: every hash and verification of the process runs on
//! a fixed set of threads (one per core), each reusing one memory area, behind a short queue.
//! A burst of logins therefore costs a fixed amount of memory and CPU; what does not fit in the
//! queue, or waits in it too long, is answered [`PasswordError::Busy`] (HTTP 503) at once instead
//! of piling up.

use std::{
    sync::{Arc, LazyLock, Mutex, mpsc},
    time::{Duration, Instant},
};

use argon2::{
    Algorithm, Argon2, Block, Params, PasswordHash, Version,
    password_hash::{Output, ParamsString, SaltString},
};

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("password hashing failed: {0}")]
    Hash(String),
    #[error("too many password checks at once; retry shortly")]
    Busy,
}

/// Jobs that may wait for a thread, per thread.
const QUEUE_PER_THREAD: usize = 16;

/// A job that waited longer than this is refused rather than run: its client is better served
/// by a quick 503 than by an answer after its own timeout.
const QUEUE_DEADLINE: Duration = Duration::from_secs(2);

/// Largest memory cost a stored hash may ask for (KiB): a hash from elsewhere cannot make a
/// verification take more memory than this.
const MAX_MEMORY_KIB: u32 = 64 * 1024;

/// argon2id with the crate's defaults (19 MiB, 2 passes, 1 lane), the OWASP-recommended floor.
fn params() -> Params {
    Params::default()
}

type Reply<T> = tokio::sync::oneshot::Sender<Result<T, PasswordError>>;

/// A job for the hashing threads, with where its answer goes.
enum Work {
    Hash {
        password: String,
        reply: Reply<String>,
    },
    Verify {
        password: String,
        stored: String,
        reply: Reply<bool>,
    },
}

struct Job {
    work: Work,
    queued_at: Instant,
}

/// The process's hashing threads. Started on first use.
static POOL: LazyLock<mpsc::SyncSender<Job>> = LazyLock::new(|| {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let (sender, receiver) = mpsc::sync_channel::<Job>(threads * QUEUE_PER_THREAD);
    let receiver = Arc::new(Mutex::new(receiver));
    for n in 0..threads {
        let receiver = receiver.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("argon2-{n}"))
            .spawn(move || worker(&receiver));
        if let Err(error) = spawned {
            tracing::error!(%error, "cannot start a password hashing thread");
        }
    }
    sender
});

fn worker(jobs: &Mutex<mpsc::Receiver<Job>>) {
    let mut memory = Vec::new();
    loop {
        let job = {
            let receiver = jobs.lock().unwrap_or_else(|poison| poison.into_inner());
            match receiver.recv() {
                Ok(job) => job,
                Err(_) => return,
            }
        };
        let late = job.queued_at.elapsed() > QUEUE_DEADLINE;
        match job.work {
            Work::Hash { password, reply } => {
                let outcome = if late {
                    Err(PasswordError::Busy)
                } else {
                    hash_now(&password, &mut memory)
                };
                let _ = reply.send(outcome);
            }
            Work::Verify {
                password,
                stored,
                reply,
            } => {
                let outcome = if late {
                    Err(PasswordError::Busy)
                } else {
                    verify_now(&password, &stored, &mut memory)
                };
                let _ = reply.send(outcome);
            }
        }
    }
}

/// Queues the job `make` builds around its reply channel, and waits for the answer.
async fn run<T>(make: impl FnOnce(Reply<T>) -> Work) -> Result<T, PasswordError> {
    let (reply, answer) = tokio::sync::oneshot::channel();
    let job = Job {
        work: make(reply),
        queued_at: Instant::now(),
    };
    POOL.try_send(job).map_err(|error| match error {
        mpsc::TrySendError::Full(_) => PasswordError::Busy,
        mpsc::TrySendError::Disconnected(_) => {
            PasswordError::Hash("the hashing threads are gone".into())
        }
    })?;
    answer
        .await
        .map_err(|_| PasswordError::Hash("a hashing thread stopped".into()))?
}

/// Returns the PHC string (`$argon2id$v=19$…`) to store.
pub async fn hash(password: &str) -> Result<String, PasswordError> {
    let password = password.to_owned();
    run(|reply| Work::Hash { password, reply }).await
}

/// True when `password` matches the stored PHC string.
pub async fn verify(password: &str, stored: &str) -> Result<bool, PasswordError> {
    let (password, stored) = (password.to_owned(), stored.to_owned());
    run(|reply| Work::Verify {
        password,
        stored,
        reply,
    })
    .await
}

/// A hash of a random password, compared against when the account does not exist, so that
/// "no such user" and "wrong password" take the same time.
pub async fn dummy_hash() -> &'static str {
    static DUMMY: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
    DUMMY
        .get_or_init(|| async {
            // Once per process, off the async workers; not through the pool, whose refusal
            // under load must not be remembered here.
            tokio::task::spawn_blocking(|| {
                hash_now(&uuid::Uuid::new_v4().to_string(), &mut Vec::new())
            })
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default()
        })
        .await
}

fn failed(error: impl std::fmt::Display) -> PasswordError {
    PasswordError::Hash(error.to_string())
}

/// Runs argon2 in `memory`, grown once to what `params` needs and kept for the next job.
fn argon2_into(
    params: Params,
    version: Version,
    password: &str,
    salt: &[u8],
    out: &mut [u8],
    memory: &mut Vec<Block>,
) -> Result<(), PasswordError> {
    let blocks = params.m_cost() as usize;
    if memory.len() < blocks {
        memory.resize(blocks, Block::default());
    }
    Argon2::new(Algorithm::Argon2id, version, params)
        .hash_password_into_with_memory(password.as_bytes(), salt, out, &mut memory[..blocks])
        .map_err(failed)
}

fn hash_now(password: &str, memory: &mut Vec<Block>) -> Result<String, PasswordError> {
    let params = params();
    let mut salt = [0u8; 16];
    rand::fill(&mut salt);
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    argon2_into(
        params.clone(),
        Version::V0x13,
        password,
        &salt,
        &mut out,
        memory,
    )?;
    let salt = SaltString::encode_b64(&salt).map_err(failed)?;
    let phc = PasswordHash {
        algorithm: argon2::ARGON2ID_IDENT,
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).map_err(failed)?,
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&out).map_err(failed)?),
    };
    Ok(phc.to_string())
}

fn verify_now(
    password: &str,
    stored: &str,
    memory: &mut Vec<Block>,
) -> Result<bool, PasswordError> {
    let parsed = PasswordHash::new(stored).map_err(failed)?;
    if parsed.algorithm != argon2::ARGON2ID_IDENT {
        return Err(failed("stored hash is not argon2id"));
    }
    let params = Params::try_from(&parsed).map_err(failed)?;
    if params.m_cost() > MAX_MEMORY_KIB {
        return Err(failed("stored hash asks for too much memory"));
    }
    let version = parsed
        .version
        .map(Version::try_from)
        .transpose()
        .map_err(failed)?
        .unwrap_or(Version::V0x13);
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return Err(failed("stored hash has no salt or no hash"));
    };
    let mut salt_bytes = [0u8; 64];
    let salt = salt.decode_b64(&mut salt_bytes).map_err(failed)?;
    let mut out = vec![0u8; expected.len()];
    argon2_into(params, version, password, salt, &mut out, memory)?;
    // Output's equality is constant-time.
    Ok(Output::new(&out).map_err(failed)? == expected)
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::PasswordVerifier;

    #[tokio::test]
    async fn hashes_with_argon2id_and_verifies() {
        let stored = hash("correct horse battery").await.unwrap();
        assert!(stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(verify("correct horse battery", &stored).await.unwrap());
        assert!(!verify("correct horse batterY", &stored).await.unwrap());
    }

    #[tokio::test]
    async fn hashes_are_standard_phc_strings_both_ways() {
        // What this module stores, the argon2 crate's own verifier accepts, and the reverse:
        // hashes stored before the bounded pool existed keep working.
        let ours = hash("correct horse battery").await.unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(
            Argon2::default()
                .verify_password(b"correct horse battery", &parsed)
                .is_ok()
        );
        let theirs = argon2::PasswordHasher::hash_password(
            &Argon2::default(),
            b"older password",
            &SaltString::encode_b64(b"0123456789abcdef").unwrap(),
        )
        .unwrap()
        .to_string();
        assert!(verify("older password", &theirs).await.unwrap());
        assert!(!verify("older passwore", &theirs).await.unwrap());
    }

    #[tokio::test]
    async fn a_burst_beyond_the_queue_is_refused_not_queued() {
        let stored = hash("correct horse battery").await.unwrap();
        let burst = (0..400).map(|_| verify("wrong", &stored));
        let outcomes = futures_util::future::join_all(burst).await;
        let busy = outcomes
            .iter()
            .filter(|outcome| matches!(outcome, Err(PasswordError::Busy)))
            .count();
        let answered = outcomes
            .iter()
            .filter(|outcome| matches!(outcome, Ok(false)))
            .count();
        assert_eq!(busy + answered, 400, "every check is answered");
        assert!(busy > 0, "the queue is bounded");
        assert!(answered > 0, "the queue does work");
    }
}
