//! Splitting one job over a few threads: the forward pass, triangle preparation and rasterization each split a
//! frame into contiguous parts when a caller wants it sooner (the server), and run whole when frames are already
//! made side by side (the batch).

/// Runs `work` on every part, the first on the calling thread and each other on a scoped thread of its own;
/// returns when all are done. Parts are few (one per core), so threads are not pooled: a spawn costs tens of
/// microseconds against the milliseconds of work a part carries.
pub fn run_parts<T: Send>(parts: Vec<T>, work: impl Fn(T) + Sync) {
    let mut parts = parts.into_iter();
    let Some(own) = parts.next() else {
        return;
    };
    let work = &work;
    std::thread::scope(|scope| {
        for part in parts {
            scope.spawn(move || work(part));
        }
        work(own);
    });
}

/// How many parts of at least `min_len` items `len` items split into, at most `threads`.
pub fn parts_for(len: usize, threads: usize, min_len: usize) -> usize {
    (len / min_len.max(1)).clamp(1, threads.max(1))
}

/// The cores this process may use (1 when unknown), looked up once.
pub fn available_cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, usize::from))
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    #[test]
    fn every_part_runs_once_and_the_first_on_the_calling_thread() {
        let caller = std::thread::current().id();
        let seen = Mutex::new(Vec::new());
        run_parts(vec![0, 1, 2, 3], |part| {
            let here = std::thread::current().id();
            seen.lock().unwrap().push((part, here == caller));
        });
        let mut seen = seen.into_inner().unwrap();
        seen.sort();
        assert_eq!(seen, vec![(0, true), (1, false), (2, false), (3, false)]);
        run_parts(Vec::<u8>::new(), |_| panic!("no parts, no work"));
    }

    #[test]
    fn parts_follow_the_work_and_the_threads() {
        assert_eq!(parts_for(10, 4, 100), 1);
        assert_eq!(parts_for(250, 4, 100), 2);
        assert_eq!(parts_for(10_000, 4, 100), 4);
        assert_eq!(parts_for(10_000, 0, 0), 1);
    }
}
