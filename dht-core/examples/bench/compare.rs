//! `--compare-persistence`: in-memory and persistent runs side by side.

use serde_json::{json, Value as Json};

use crate::args::Args;
use crate::{round, run_child, BoxError, PHASES};

/// `--compare-persistence R`: R rounds per network size, each an in-memory
/// run then a persistent one (interleaved, so a machine whose load changes
/// during the benchmark affects both sides alike); every run's figures, the
/// medians and the ratios of the medians.
pub fn compare_persistence(args: &Args) -> Result<(), BoxError> {
    let parent = match &args.data_dir {
        Some(dir) => dir.clone(),
        None => std::env::temp_dir().join(format!("kadmium-bench-{}", std::process::id())),
    };
    let measured: Vec<&str> = PHASES
        .iter()
        .map(|(name, ..)| *name)
        .filter(|name| args.phases.iter().any(|p| p == name))
        .collect();
    let mut sizes = Vec::new();
    for &nodes in &args.nodes {
        let mut memory = Vec::new();
        let mut persistent = Vec::new();
        for round in 0..args.compare_rounds {
            eprintln!("bench: N = {nodes}: round {round}, in memory");
            let in_memory = Args {
                data_dir: None,
                ..args.clone()
            };
            memory.push(run_child(&in_memory, nodes)?);
            let dir = parent.join(format!("{nodes}-r{round}"));
            eprintln!(
                "bench: N = {nodes}: round {round}, data directory {}",
                dir.display()
            );
            let on_disk = Args {
                data_dir: Some(dir.clone()),
                ..args.clone()
            };
            let report = run_child(&on_disk, nodes);
            let _ = std::fs::remove_dir_all(&dir);
            persistent.push(report?);
        }
        let mut summary = json!({ "nodes": nodes });
        for phase in &measured {
            let mut line = json!({});
            for figure in ["put_ops_s", "get_ops_s"] {
                let pick = |runs: &[Json]| -> Vec<f64> {
                    runs.iter()
                        .filter_map(|r| r[phase][figure].as_f64())
                        .collect()
                };
                let (mem, disk) = (pick(&memory), pick(&persistent));
                let (mem_median, disk_median) = (median(&mem), median(&disk));
                line[figure] = json!({
                    "memory": mem,
                    "data_dir": disk,
                    "memory_median": mem_median,
                    "data_dir_median": disk_median,
                    "ratio_of_medians": round(disk_median / mem_median, 3),
                });
                eprintln!(
                    "bench: N = {nodes}: {phase} {figure}: in memory {mem:?} (median {mem_median}), \
                     data directory {disk:?} (median {disk_median}): {:.0} %",
                    100.0 * disk_median / mem_median
                );
            }
            summary[*phase] = line;
        }
        sizes.push(summary);
    }
    let _ = std::fs::remove_dir(&parent);
    let report = json!({
        "impl": "kadmium (Rust API, dht-core)",
        "comparison": "in memory vs data directory, interleaved rounds",
        "rounds": args.compare_rounds,
        "ops": args.ops,
        "concurrency": args.concurrency,
        "value_size": args.value_size,
        "data_dir_parent": parent.display().to_string(),
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "sizes": sizes,
    });
    println!("{report}");
    Ok(())
}

fn median(samples: &[f64]) -> f64 {
    let mut sorted = samples.to_vec();
    sorted.sort_by(|a, b| a.total_cmp(b));
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}
