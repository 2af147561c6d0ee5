#include "cli/cli.hpp"

int main(int argc, char** argv) { return kaisar::cli::run(argc, argv); }
