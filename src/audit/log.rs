//! The audit log backend: events go through a bounded buffer to one writer thread, so writing
//! never blocks a request (k8s.io/apiserver's buffered backend in front of its log backend).
//! When the buffer is full the event is dropped and counted
//! (`apiserver_audit_error_total{plugin="buffered"}`). The file is rotated like kube's
//! lumberjack logger: past `--audit-log-maxsize` MB the file is renamed
//! `<name>-<UTC time>.<ext>` and a new one started; backups beyond `--audit-log-maxbackup` or
//! older than `--audit-log-maxage` days are removed. `-` writes to standard output.

use prometheus_client::metrics::counter::Counter;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::{Duration, SystemTime};

/// Where and how the log is written (kube's `--audit-log-*` flags).
#[derive(Clone, Debug, Default)]
pub struct LogOptions {
    /// The file; `-` for standard output.
    pub path: PathBuf,
    /// Days to keep rotated files (0: no age limit).
    pub max_age_days: u64,
    /// Rotated files to keep (0: no count limit).
    pub max_backups: usize,
    /// Megabytes before rotating (0: never rotate).
    pub max_size_mb: u64,
    /// Events buffered before new ones are dropped.
    pub buffer: usize,
}

/// The sending side: queues lines without waiting.
#[derive(Clone)]
pub struct Sink {
    queue: SyncSender<Vec<u8>>,
    /// Events dropped because the buffer was full.
    dropped: Counter,
}

impl Sink {
    /// Queues one JSON line; never blocks. Returns whether it was queued.
    pub fn send(&self, line: Vec<u8>) -> bool {
        match self.queue.try_send(line) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.dropped.inc();
                false
            }
        }
    }
}

/// Opens the log (creating it 0600, and its directory, as kube does) and starts the writer
/// thread.
pub fn start(options: LogOptions, dropped: Counter) -> std::io::Result<Sink> {
    let mut writer = Writer::open(options.clone())?;
    let (queue, lines) = sync_channel(options.buffer.max(1));
    std::thread::Builder::new()
        .name("audit-log".into())
        .spawn(move || writer.run(lines))?;
    Ok(Sink { queue, dropped })
}

enum Out {
    Stdout,
    File { file: File, size: u64 },
}

struct Writer {
    options: LogOptions,
    out: Out,
}

fn open_append(path: &Path) -> std::io::Result<File> {
    let mut o = OpenOptions::new();
    o.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o.open(path)
}

impl Writer {
    fn open(options: LogOptions) -> std::io::Result<Writer> {
        if options.path.as_os_str() == "-" {
            return Ok(Writer {
                options,
                out: Out::Stdout,
            });
        }
        if let Some(dir) = options.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let file = open_append(&options.path)?;
        let size = file.metadata()?.len();
        Ok(Writer {
            options,
            out: Out::File { file, size },
        })
    }

    fn run(&mut self, lines: Receiver<Vec<u8>>) {
        while let Ok(line) = lines.recv() {
            if let Err(e) = self.write(&line) {
                tracing::warn!(error = %e, "cannot write the audit log");
            }
        }
    }

    fn write(&mut self, line: &[u8]) -> std::io::Result<()> {
        let max = self.options.max_size_mb * 1024 * 1024;
        let rotate = match &self.out {
            Out::File { size, .. } => max > 0 && *size > 0 && size + line.len() as u64 > max,
            Out::Stdout => false,
        };
        if rotate {
            self.rotate()?;
        }
        match &mut self.out {
            Out::Stdout => {
                let mut out = std::io::stdout().lock();
                out.write_all(line)?;
                out.flush()
            }
            Out::File { file, size } => {
                file.write_all(line)?;
                *size += line.len() as u64;
                Ok(())
            }
        }
    }

    /// lumberjack's rotation: rename to a timestamped backup, start anew, prune backups.
    fn rotate(&mut self) -> std::io::Result<()> {
        let path = self.options.path.clone();
        let backup = backup_name(&path, jiff::Timestamp::now());
        std::fs::rename(&path, &backup)?;
        let file = open_append(&path)?;
        self.out = Out::File { file, size: 0 };
        self.prune(&path);
        Ok(())
    }

    fn prune(&self, path: &Path) {
        let (dir, prefix, ext) = parts(path);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return;
        };
        let mut backups: Vec<(String, PathBuf)> = entries
            .filter_map(Result::ok)
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().to_string();
                let stamp = name.strip_prefix(&prefix)?.strip_suffix(&ext)?.to_string();
                parse_stamp(&stamp).map(|_| (stamp, e.path()))
            })
            .collect();
        // Newest first (the time format sorts as text).
        backups.sort_by(|a, b| b.0.cmp(&a.0));
        let cutoff = (self.options.max_age_days > 0).then(|| {
            SystemTime::now() - Duration::from_secs(self.options.max_age_days * 24 * 3600)
        });
        for (i, (stamp, file)) in backups.iter().enumerate() {
            let too_many = self.options.max_backups > 0 && i >= self.options.max_backups;
            let too_old = cutoff.is_some_and(|c| parse_stamp(stamp).is_some_and(|t| t < c));
            if too_many || too_old {
                let _ = std::fs::remove_file(file);
            }
        }
    }
}

/// (directory, `<stem>-`, `.<ext>`) of the log file.
fn parts(path: &Path) -> (PathBuf, String, String) {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_default();
    let ext = path
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_default();
    (dir, format!("{stem}-"), ext)
}

/// lumberjack's backup format: `2006-01-02T15-04-05.000` in UTC.
const STAMP: &str = "%Y-%m-%dT%H-%M-%S%.3f";

fn backup_name(path: &Path, at: jiff::Timestamp) -> PathBuf {
    let (dir, prefix, ext) = parts(path);
    let stamp = at.strftime(STAMP).to_string();
    dir.join(format!("{prefix}{stamp}{ext}"))
}

fn parse_stamp(stamp: &str) -> Option<SystemTime> {
    let t = jiff::civil::DateTime::strptime(STAMP, stamp).ok()?;
    let ts = t.to_zoned(jiff::tz::TimeZone::UTC).ok()?.timestamp();
    Some(SystemTime::from(ts))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_keeps_the_newest_backups_named_like_lumberjack() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let mut w = Writer::open(LogOptions {
            path: path.clone(),
            max_size_mb: 1,
            max_backups: 2,
            buffer: 1,
            ..Default::default()
        })
        .unwrap();
        let line = vec![b'x'; 400 * 1024];
        for _ in 0..12 {
            w.write(&line).unwrap();
            // Backups are named to the millisecond.
            std::thread::sleep(Duration::from_millis(2));
        }
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect();
        names.sort();
        assert_eq!(names.len(), 3, "{names:?}");
        assert_eq!(names[2], "audit.log");
        for backup in &names[..2] {
            let stamp = backup
                .strip_prefix("audit-")
                .and_then(|s| s.strip_suffix(".log"))
                .unwrap();
            assert!(parse_stamp(stamp).is_some(), "{backup}");
            assert!(std::fs::metadata(dir.path().join(backup)).unwrap().len() <= 1024 * 1024);
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn old_backups_are_removed_by_age() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let old = backup_name(&path, jiff::Timestamp::from_second(1_000_000_000).unwrap());
        std::fs::write(&old, "old\n").unwrap();
        let w = Writer::open(LogOptions {
            path: path.clone(),
            max_age_days: 1,
            ..Default::default()
        })
        .unwrap();
        w.prune(&path);
        assert!(!old.exists());
        assert_eq!(
            old.file_name().unwrap().to_string_lossy(),
            "audit-2001-09-09T01-46-40.000.log"
        );
    }

    #[test]
    fn a_full_buffer_drops_and_counts() {
        let (queue, _lines) = sync_channel(1);
        let sink = Sink {
            queue,
            dropped: Counter::default(),
        };
        assert!(sink.send(b"a\n".to_vec()));
        assert!(!sink.send(b"b\n".to_vec()));
        assert_eq!(sink.dropped.get(), 1);
    }
}
