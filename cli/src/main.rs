//! `probevisor`: the host command line. A thin dispatcher; each command lives in its module.

mod args;
mod bench_cmd;
mod eval_cmd;
mod eval_generate;
mod eval_injection;
mod eval_knn;
mod eval_knn_states;
mod eval_reason;
mod eval_report;
mod eval_retrieve;
mod eval_rows;
mod eval_scores;
mod eval_whole_gate;
mod infer_cmds;
mod json;
mod model_file;
mod probe_cmds;
mod synth_cmd;

const USAGE: &str = "usage: probevisor <command> [options]
commands:
  tokenize --model PATH TEXT                       token ids of TEXT
  logits   --model PATH [--top K] [--raw-out FILE] [--threads N] [--isa scalar|avx2]
           [--arith native|llamacpp] TEXT          next-token logits after TEXT (llamacpp: a slower
                                                   copy of llama.cpp's CPU arithmetic)
  synth-model OUT [--seed N] | blake3 FILE         tiny test model; blake3 of a file
  generate --model PATH [-n N] [--threads N] TEXT  greedy continuation of TEXT
  probe | eval | audit ...                         ProbeLogits commands (`probevisor probe --help`, eval, audit)
  bridge --com2 SPEC --scratch DIR ...             COM2 <-> MCP server bridge (see `probevisor bridge --help`)";

/// The usage of a command that has its own, for `probevisor CMD --help`.
fn usage_of(cmd: &str) -> Option<&'static str> {
    match cmd {
        "probe" => Some(probe_cmds::PROBE_USAGE),
        "eval" => Some(eval_cmd::EVAL_USAGE),
        "audit" => Some(probe_cmds::AUDIT_USAGE),
        _ => None,
    }
}

fn run(cmd: &str, rest: &[String]) -> Result<(), String> {
    if let Some(usage) = usage_of(cmd).filter(|_| rest.iter().any(|a| a == "-h" || a == "--help")) {
        println!("{usage}");
        return Ok(());
    }
    match cmd {
        "tokenize" => infer_cmds::tokenize(rest),
        "logits" => infer_cmds::logits(rest),
        "generate" => infer_cmds::generate(rest),
        "bridge" => mcp_bridge::cli_main(rest),
        "synth-model" => synth_cmd::synth_model(rest),
        "blake3" => synth_cmd::blake3_file(rest),
        "bench-internal" => bench_cmd::run(rest),
        "probe" => probe_cmds::probe(rest),
        "eval" => eval_cmd::eval(rest),
        "audit" => probe_cmds::audit(rest),
        "-h" | "--help" | "help" => {
            println!("{USAGE}");
            Ok(())
        }
        other => Err(format!("unknown command '{other}'\n{USAGE}")),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((cmd, rest)) = args.split_first() else {
        eprintln!("{USAGE}");
        std::process::exit(2);
    };
    if let Err(e) = run(cmd, rest) {
        eprintln!("probevisor {cmd}: {e}");
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_command_named_in_the_usage_answers_help() {
        for cmd in ["probe", "eval", "audit"] {
            let usage = usage_of(cmd).unwrap();
            assert!(
                usage.starts_with(&format!("usage: probevisor {cmd}")),
                "{usage}"
            );
            assert_eq!(run(cmd, &["--help".to_string()]), Ok(()));
        }
        assert_eq!(usage_of("tokenize"), None);
    }
}
