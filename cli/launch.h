// `uotflow train --nproc N`: N processes of this program on this machine, joined by environment
// variables the way torchrun joins its workers (RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR,
// MASTER_PORT), so one code path serves both.
#pragma once

#include <string>
#include <vector>

namespace uotflow_cli {

/// Starts `nproc` copies of this program with `args` (argv without the --nproc flag) and waits for
/// them. Each copy runs in a process group of its own and ends when the launcher does; SIGINT and
/// SIGTERM to the launcher are passed on to every copy once (each checkpoints and stops with the
/// others). When one copy fails, the others are told to stop, and killed if they have not after
/// the grace period. Returns the exit code of the first copy that failed, else 0.
int launch_local_processes(int nproc, const std::vector<std::string>& args, double grace_seconds);

}  // namespace uotflow_cli
