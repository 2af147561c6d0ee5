#pragma once

namespace kaisar::cli {

// The whole `kaisar` command line; returns the process exit code.
int run(int argc, char** argv);

}  // namespace kaisar::cli
