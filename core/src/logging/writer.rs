//! The log writer: whole lines are appended to one shared buffer where they happen, and a
//! thread of its own takes everything that waits and writes it in one call.
//!
//! Compared with a queue of lines, a line costs one copy into the buffer under a short lock:
//! no allocation per line, no hand-over of each line to the writer's thread, no memory freed
//! on another thread than the one that took it, and no second copy into a write buffer.
//!
//! The writer sleeps while nothing waits. The first line wakes it; it then lets lines gather
//! for [`GATHER`] (or until [`BATCH`] bytes wait) before it writes them all: under load one
//! wake-up and one write carry hundreds of lines, instead of the writer waking for every line
//! and taking the CPU from the requests each time.

use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

/// How long the writer lets lines gather after the first one before it writes them.
const GATHER: std::time::Duration = std::time::Duration::from_millis(20);

/// A batch this large is written without waiting for the rest of [`GATHER`].
const BATCH: usize = 256 * 1024;

/// A batch buffer that grew past this in a burst is not kept.
const KEPT_CAPACITY: usize = 1024 * 1024;

/// The handle lines are sent through. Cheap to clone.
#[derive(Clone)]
pub(crate) struct LogWriter {
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<State>,
    /// Signalled when lines arrive for a sleeping writer, and when it must stop.
    arrived: Condvar,
    /// Where lines end up. The writer thread writes its batches here; once it has stopped,
    /// lines are written here by whoever logs them.
    out: Mutex<Box<dyn Write + Send>>,
    /// The most bytes that may wait; a line that does not fit is dropped and counted.
    limit: usize,
}

#[derive(Default)]
struct State {
    waiting: Vec<u8>,
    /// The writer waits for a first line.
    asleep: bool,
    /// The writer lets lines gather (for at most [`GATHER`]).
    gathering: bool,
    stopped: bool,
    dropped: u64,
}

/// Stops the writer thread when dropped, after it has written every line that waits.
pub(crate) struct WriterGuard {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl LogWriter {
    /// A writer to `out` on a thread named `name`, at most `limit` bytes of lines waiting.
    pub(crate) fn start(
        out: impl Write + Send + 'static,
        limit: usize,
        name: &str,
    ) -> (LogWriter, WriterGuard) {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            arrived: Condvar::new(),
            out: Mutex::new(Box::new(out)),
            limit,
        });
        let worker = shared.clone();
        let thread = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || worker.run());
        let thread = match thread {
            Ok(thread) => Some(thread),
            Err(e) => {
                // No thread: every line is written where it is logged.
                eprintln!("cannot start the log writer thread ({e}); logging without it");
                lock(&shared.state).stopped = true;
                None
            }
        };
        let guard = WriterGuard {
            shared: shared.clone(),
            thread,
        };
        (LogWriter { shared }, guard)
    }

    /// Hands over one whole line (or several). It waits for the writer, or is dropped and
    /// counted when [`limit`](LogWriter::start) bytes wait already; once the writer has
    /// stopped it is written here and now.
    pub(crate) fn send(&self, line: &[u8]) {
        let shared = &*self.shared;
        let mut state = lock(&shared.state);
        if state.stopped {
            // After the writer's last batch, in order: the state's lock is held.
            let mut out = lock(&shared.out);
            let _ = out.write_all(line);
            let _ = out.flush();
            return;
        }
        if state.waiting.len() + line.len() > shared.limit {
            state.dropped += 1;
            return;
        }
        let before = state.waiting.len();
        state.waiting.extend_from_slice(line);
        let wake = (state.asleep && before == 0)
            || (state.gathering && before < BATCH && state.waiting.len() >= BATCH);
        drop(state);
        if wake {
            shared.arrived.notify_one();
        }
    }
}

impl Shared {
    fn run(&self) {
        let mut batch = Vec::with_capacity(BATCH);
        loop {
            {
                let mut state = lock(&self.state);
                while state.waiting.is_empty() && !state.stopped {
                    state.asleep = true;
                    state = self.arrived.wait(state).unwrap_or_else(|p| p.into_inner());
                    state.asleep = false;
                }
                if state.waiting.is_empty() {
                    return;
                }
                if !state.stopped && state.waiting.len() < BATCH {
                    state.gathering = true;
                    state = self
                        .arrived
                        .wait_timeout(state, GATHER)
                        .unwrap_or_else(|p| p.into_inner())
                        .0;
                    state.gathering = false;
                }
                std::mem::swap(&mut state.waiting, &mut batch);
            }
            {
                let mut out = lock(&self.out);
                // A log that cannot be written (its pipe closed) loses the batch: there is
                // nowhere else to put it.
                let _ = out.write_all(&batch);
                let _ = out.flush();
            }
            batch.clear();
            if batch.capacity() > KEPT_CAPACITY {
                batch = Vec::with_capacity(BATCH);
            }
        }
    }
}

impl WriterGuard {
    /// Stops the writer after it has written every line that waits, and says how many lines
    /// were dropped because it could not keep up.
    pub(crate) fn stop(mut self) -> u64 {
        self.finish();
        lock(&self.shared.state).dropped
    }

    fn finish(&mut self) {
        lock(&self.shared.state).stopped = true;
        // Wakes the writer whether it sleeps or gathers.
        self.shared.arrived.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for WriterGuard {
    fn drop(&mut self) {
        self.finish();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A sink whose bytes the test reads afterwards.
    #[derive(Clone, Default)]
    pub(in crate::logging) struct Buffer(pub(in crate::logging) Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// A sink that lets nothing through until the test opens it.
    struct Gate {
        open: Arc<(Mutex<bool>, Condvar)>,
        into: Buffer,
    }

    impl Write for Gate {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            let (open, changed) = &*self.open;
            let mut open = open.lock().unwrap();
            while !*open {
                open = changed.wait(open).unwrap();
            }
            self.into.write(bytes)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn every_line_of_many_threads_is_written_whole_and_in_each_threads_order() {
        let buffer = Buffer::default();
        let (writer, guard) = LogWriter::start(buffer.clone(), 1 << 30, "test-log-writer");
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let writer = writer.clone();
                std::thread::spawn(move || {
                    for i in 0..5_000 {
                        writer.send(format!("thread {t} line {i}\n").as_bytes());
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let dropped = guard.stop();
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        let mut next = [0; 4];
        for line in text.lines() {
            let words: Vec<&str> = line.split(' ').collect();
            let (t, i): (usize, usize) = (words[1].parse().unwrap(), words[3].parse().unwrap());
            assert_eq!(i, next[t], "{line}");
            next[t] += 1;
        }
        assert_eq!(next, [5_000; 4]);
        assert_eq!(dropped, 0);
    }

    #[test]
    fn lines_beyond_the_limit_are_dropped_and_counted_and_the_rest_kept() {
        let open = Arc::new((Mutex::new(false), Condvar::new()));
        let buffer = Buffer::default();
        let gate = Gate {
            open: open.clone(),
            into: buffer.clone(),
        };
        let (writer, guard) = LogWriter::start(gate, 100, "test-log-writer");
        // The first line may already be with the blocked writer; then 100 bytes can wait.
        writer.send(b"first\n");
        std::thread::sleep(std::time::Duration::from_millis(50));
        for i in 0..30 {
            writer.send(format!("line {i:03}\n").as_bytes());
        }
        *open.0.lock().unwrap() = true;
        open.1.notify_all();
        let dropped = guard.stop();
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        let written = text.lines().count() as u64;
        assert_eq!(written + dropped, 31, "{text}");
        assert!(dropped >= 17, "{dropped} dropped: {text}");
        assert!(text.starts_with("first\nline 000\n"), "{text}");
    }

    #[test]
    fn lines_after_the_writer_stopped_are_written_where_they_are_logged() {
        let buffer = Buffer::default();
        let (writer, guard) = LogWriter::start(buffer.clone(), 1 << 20, "test-log-writer");
        writer.send(b"before\n");
        drop(guard);
        writer.send(b"after\n");
        assert_eq!(&*buffer.0.lock().unwrap(), b"before\nafter\n");
    }
}
