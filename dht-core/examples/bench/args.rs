//! The bench example's command line.

use crate::{BoxError, PHASES};

const USAGE: &str =
    "usage: bench [--nodes 64,1000] [--ops 300] [--concurrency 32] [--value-size 100] \
                     [--ksize 20] [--alpha 3] [--seed 1] [--rpc-timeout-ms 2000] [--data-dir DIR] \
                     [--phases seq,par,signed_seq,signed_par] [--compare-persistence ROUNDS] \
                     [--floor-rounds 20000]";

#[derive(Clone, Debug)]
pub struct Args {
    pub nodes: Vec<usize>,
    pub ops: usize,
    pub concurrency: usize,
    pub value_size: usize,
    pub ksize: usize,
    pub alpha: usize,
    pub seed: u64,
    pub rpc_timeout_ms: u64,
    /// Persistence on: node i of an N-node run keeps its state in DIR/N-node<i>.
    pub data_dir: Option<std::path::PathBuf>,
    /// The phases run, in the order of [`PHASES`] whatever order is given.
    pub phases: Vec<String>,
    /// Rounds of in-memory and persistent runs side by side (0: off).
    pub compare_rounds: usize,
    /// Round trips of the loopback ping-pong measured in each network's
    /// process just before its phases (0: none).
    pub floor_rounds: usize,
    /// Internal: run exactly one network size in this process.
    pub single: bool,
}

/// `value` of `flag`, or an error naming the flag.
fn parse<T: std::str::FromStr>(flag: &str, value: &str) -> Result<T, BoxError>
where
    T::Err: std::fmt::Display,
{
    value
        .parse()
        .map_err(|e| format!("{flag}: {value:?}: {e}").into())
}

impl Args {
    pub fn parse() -> Result<Args, BoxError> {
        let mut args = Args {
            nodes: vec![64, 1000],
            ops: 300,
            concurrency: 32,
            value_size: 100,
            ksize: 20,
            alpha: 3,
            seed: 1,
            rpc_timeout_ms: 2000,
            data_dir: None,
            phases: PHASES.iter().map(|(name, ..)| (*name).to_owned()).collect(),
            compare_rounds: 0,
            floor_rounds: 20_000,
            single: false,
        };
        let mut it = std::env::args().skip(1);
        while let Some(flag) = it.next() {
            if flag == "--single" {
                args.single = true;
                continue;
            }
            if flag == "-h" || flag == "--help" {
                return Err(USAGE.into());
            }
            let value = it
                .next()
                .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
            match flag.as_str() {
                "--nodes" => {
                    args.nodes = value
                        .split(',')
                        .map(|n| parse(&flag, n.trim()))
                        .collect::<Result<_, _>>()?;
                }
                "--ops" => args.ops = parse(&flag, &value)?,
                "--concurrency" => args.concurrency = parse(&flag, &value)?,
                "--value-size" => args.value_size = parse(&flag, &value)?,
                "--ksize" => args.ksize = parse(&flag, &value)?,
                "--alpha" => args.alpha = parse(&flag, &value)?,
                "--seed" => args.seed = parse(&flag, &value)?,
                "--rpc-timeout-ms" => args.rpc_timeout_ms = parse(&flag, &value)?,
                "--data-dir" => args.data_dir = Some(value.into()),
                "--compare-persistence" => args.compare_rounds = parse(&flag, &value)?,
                "--floor-rounds" => args.floor_rounds = parse(&flag, &value)?,
                "--phases" => {
                    args.phases = value.split(',').map(|p| p.trim().to_owned()).collect();
                    if let Some(bad) = args
                        .phases
                        .iter()
                        .find(|p| !PHASES.iter().any(|(name, ..)| name == p))
                    {
                        return Err(format!("--phases: unknown phase {bad}\n{USAGE}").into());
                    }
                }
                _ => return Err(format!("unknown flag {flag}\n{USAGE}").into()),
            }
        }
        if args.nodes.is_empty() || args.nodes.iter().any(|&n| n < 2) {
            return Err("--nodes: every network needs at least 2 nodes".into());
        }
        if args.ops == 0 || args.concurrency == 0 {
            return Err("--ops and --concurrency must be positive".into());
        }
        Ok(args)
    }

    /// The flags that reproduce this run for one network size.
    pub fn child_flags(&self, nodes: usize) -> Vec<String> {
        let pairs = [
            ("--nodes", nodes.to_string()),
            ("--ops", self.ops.to_string()),
            ("--concurrency", self.concurrency.to_string()),
            ("--value-size", self.value_size.to_string()),
            ("--ksize", self.ksize.to_string()),
            ("--alpha", self.alpha.to_string()),
            ("--seed", self.seed.to_string()),
            ("--rpc-timeout-ms", self.rpc_timeout_ms.to_string()),
            ("--phases", self.phases.join(",")),
            ("--floor-rounds", self.floor_rounds.to_string()),
        ];
        let mut flags: Vec<String> = pairs
            .into_iter()
            .flat_map(|(f, v)| [f.to_owned(), v])
            .collect();
        if let Some(dir) = &self.data_dir {
            flags.push("--data-dir".to_owned());
            flags.push(dir.display().to_string());
        }
        flags.push("--single".to_owned());
        flags
    }
}
