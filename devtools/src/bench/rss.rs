//! Peak resident memory of devhost and its `meshpay` while a phase runs, read from /proc
//! (`VmHWM`, the kernel's high-water mark of each process), sampled so a restarted handler's
//! peak is not lost.

use std::collections::BTreeMap;
use std::time::Duration;

const SAMPLE_EVERY: Duration = Duration::from_millis(250);

/// Peak RSS in KiB per process name (`devhost`, `meshpay`).
pub type Peaks = BTreeMap<String, u64>;

/// Runs `phase` while sampling; its result and the peaks seen.
pub async fn while_running<T>(phase: impl Future<Output = T>) -> (T, Peaks) {
    let mut peaks = Peaks::new();
    tokio::pin!(phase);
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    loop {
        tokio::select! {
            result = &mut phase => {
                sample(&mut peaks);
                return (result, peaks);
            }
            _ = tick.tick() => sample(&mut peaks),
        }
    }
}

fn sample(peaks: &mut Peaks) {
    let me = std::process::id();
    for (pid, name) in descendants(me) {
        if name != "devhost" && name != "meshpay" {
            continue;
        }
        if let Some(kib) = high_water_kib(pid) {
            let peak = peaks.entry(name).or_default();
            *peak = (*peak).max(kib);
        }
    }
}

/// (pid, comm) of every process below `root`.
fn descendants(root: u32) -> Vec<(u32, String)> {
    let mut parents: Vec<(u32, u32, String)> = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // `pid (comm) state ppid ...`: comm may hold spaces and parentheses.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let comm = stat[open + 1..close].to_owned();
        let ppid = stat[close + 1..]
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse::<u32>().ok());
        if let Some(ppid) = ppid {
            parents.push((pid, ppid, comm));
        }
    }
    let mut found = Vec::new();
    let mut frontier = vec![root];
    while let Some(parent) = frontier.pop() {
        for (pid, ppid, comm) in &parents {
            if *ppid == parent {
                found.push((*pid, comm.clone()));
                frontier.push(*pid);
            }
        }
    }
    found
}

fn high_water_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
