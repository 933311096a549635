//! The process metrics every Prometheus exporter serves (`process_cpu_seconds_total`,
//! `process_resident_memory_bytes`, `process_virtual_memory_bytes`, `process_open_fds`,
//! `process_max_fds`, `process_threads`, `process_start_time_seconds`), read from Linux's
//! `/proc/self` at each scrape. Same names and meanings as the `prometheus` crate's own process
//! collector, which needs the `procfs` crate this workspace does not otherwise carry. Elsewhere
//! than Linux (no `/proc`) it reports nothing.

use std::sync::Mutex;

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{Counter, Gauge, Opts, Registry};

/// Clock ticks per second of `/proc/<pid>/stat`'s times: USER_HZ, 100 on every Linux ABI.
const TICKS: f64 = 100.0;

pub struct ProcessCollector {
    cpu: Counter,
    /// The CPU seconds already added to `cpu` (a counter only goes up by increments).
    cpu_seen: Mutex<f64>,
    resident: Gauge,
    virtual_memory: Gauge,
    open_fds: Gauge,
    max_fds: Gauge,
    threads: Gauge,
    start_time: Gauge,
}

impl ProcessCollector {
    fn new() -> Result<Self, prometheus::Error> {
        let gauge = |name: &str, help: &str| Gauge::with_opts(Opts::new(name, help));
        Ok(Self {
            cpu: Counter::with_opts(Opts::new(
                "process_cpu_seconds_total",
                "Total user and system CPU time spent in seconds.",
            ))?,
            cpu_seen: Mutex::new(0.0),
            resident: gauge("process_resident_memory_bytes", "Resident memory size in bytes.")?,
            virtual_memory: gauge("process_virtual_memory_bytes", "Virtual memory size in bytes.")?,
            open_fds: gauge("process_open_fds", "Number of open file descriptors.")?,
            max_fds: gauge("process_max_fds", "Maximum number of open file descriptors.")?,
            threads: gauge("process_threads", "Number of OS threads in the process.")?,
            start_time: gauge("process_start_time_seconds", "Start time of the process since unix epoch in seconds.")?,
        })
    }

    fn gauges(&self) -> [&Gauge; 6] {
        [&self.resident, &self.virtual_memory, &self.open_fds, &self.max_fds, &self.threads, &self.start_time]
    }

    /// Reads `/proc/self`; `None` where there is none.
    fn read(&self) -> Option<()> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // The command name (field 2) is in parentheses and may hold spaces: fields count
        // from the last ')'. Fields 14 and 15 are utime and stime, 20 threads, 22 the start
        // time in ticks since boot, 23 the virtual size in bytes.
        let after = &stat[stat.rfind(')')? + 2..];
        let field = |n: usize| after.split(' ').nth(n - 3).and_then(|v| v.parse::<f64>().ok());
        let cpu = (field(14)? + field(15)?) / TICKS;
        {
            let mut seen = self.cpu_seen.lock().ok()?;
            if cpu > *seen {
                self.cpu.inc_by(cpu - *seen);
                *seen = cpu;
            }
        }
        self.threads.set(field(20)?);
        self.virtual_memory.set(field(23)?);
        let boot = std::fs::read_to_string("/proc/stat").ok()?;
        let btime = boot.lines().find_map(|l| l.strip_prefix("btime "))?.trim().parse::<f64>().ok()?;
        self.start_time.set(btime + field(22)? / TICKS);
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        if let Some(kb) = status.lines().find_map(|l| l.strip_prefix("VmRSS:")) {
            let kb = kb.trim().trim_end_matches("kB").trim().parse::<f64>().ok()?;
            self.resident.set(kb * 1024.0);
        }
        if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
            self.open_fds.set(fds.count() as f64);
        }
        let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
        if let Some(line) = limits.lines().find(|l| l.starts_with("Max open files")) {
            // "Max open files  <soft>  <hard>  files": the soft limit is the one that bites.
            if let Some(soft) = line["Max open files".len()..].split_whitespace().next().and_then(|v| v.parse().ok()) {
                self.max_fds.set(soft);
            }
        }
        Some(())
    }
}

impl Collector for ProcessCollector {
    fn desc(&self) -> Vec<&Desc> {
        let mut descs = self.cpu.desc();
        for g in self.gauges() {
            descs.extend(g.desc());
        }
        descs
    }

    fn collect(&self) -> Vec<MetricFamily> {
        if self.read().is_none() {
            return Vec::new();
        }
        let mut families = self.cpu.collect();
        for g in self.gauges() {
            families.extend(g.collect());
        }
        families
    }
}

/// Adds the process metrics to `registry` (each process's `/metrics`).
pub fn register(registry: &Registry) -> Result<(), prometheus::Error> {
    registry.register(Box::new(ProcessCollector::new()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_process_reports_its_own_figures() {
        let registry = Registry::new();
        register(&registry).unwrap();
        let text = tradeflow_bus::metrics::render(&registry);
        let value = |name: &str| -> f64 {
            let line =
                text.lines().find(|l| l.starts_with(&format!("{name} "))).unwrap_or_else(|| panic!("{name}: {text}"));
            line.rsplit(' ').next().unwrap().parse().unwrap()
        };
        assert!(value("process_resident_memory_bytes") > 1e6, "{text}");
        assert!(value("process_virtual_memory_bytes") >= value("process_resident_memory_bytes"));
        assert!(value("process_open_fds") >= 3.0);
        assert!(value("process_max_fds") >= value("process_open_fds"));
        assert!(value("process_threads") >= 1.0);
        assert!(value("process_cpu_seconds_total") >= 0.0);
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
        let start = value("process_start_time_seconds");
        assert!(start <= now + 1.0 && start > now - 24.0 * 3600.0, "started {start}, now {now}");
        assert!(text.contains("# TYPE process_cpu_seconds_total counter"));
    }
}
