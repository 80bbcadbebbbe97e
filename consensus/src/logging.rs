//! Bridge raft-rs's slog records into `tracing` (target `raft`).

use std::fmt::{self, Write as _};

struct KvCollector(String);

impl slog::Serializer for KvCollector {
    fn emit_arguments(&mut self, key: slog::Key, val: &fmt::Arguments<'_>) -> slog::Result {
        let _ = write!(self.0, " {key}={val}");
        Ok(())
    }
}

struct TracingDrain;

impl slog::Drain for TracingDrain {
    type Ok = ();
    type Err = slog::Never;

    fn log(
        &self,
        record: &slog::Record<'_>,
        values: &slog::OwnedKVList,
    ) -> Result<(), slog::Never> {
        use slog::KV;
        let mut kv = KvCollector(String::new());
        let _ = record.kv().serialize(record, &mut kv);
        let _ = values.serialize(record, &mut kv);
        match record.level() {
            slog::Level::Critical | slog::Level::Error => {
                tracing::error!(target: "raft", "{}{}", record.msg(), kv.0)
            }
            slog::Level::Warning => tracing::warn!(target: "raft", "{}{}", record.msg(), kv.0),
            slog::Level::Info => tracing::info!(target: "raft", "{}{}", record.msg(), kv.0),
            slog::Level::Debug => tracing::debug!(target: "raft", "{}{}", record.msg(), kv.0),
            slog::Level::Trace => tracing::trace!(target: "raft", "{}{}", record.msg(), kv.0),
        }
        Ok(())
    }
}

/// A slog logger for raft-rs that forwards to `tracing`.
pub fn tracing_logger(node_id: u64) -> slog::Logger {
    slog::Logger::root(TracingDrain, slog::o!("raft_id" => node_id))
}

/// A logger that drops everything (simulator: thousands of elections are noise).
pub(crate) fn discard_logger() -> slog::Logger {
    slog::Logger::root(slog::Discard, slog::o!())
}
