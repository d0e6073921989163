// BenchmarkDotNet micro-benchmarks of Nexus's hot paths (issue #20). Run through bench/micro.sh, which passes its
// arguments on: e.g. `--job short` (the default there) or `--job dry` to prove that everything runs.
using BenchmarkDotNet.Running;

BenchmarkSwitcher.FromAssembly(typeof(Nexus.Micro.ClientAuthentication).Assembly).Run(args);
