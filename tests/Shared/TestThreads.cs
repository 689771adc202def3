using System.Runtime.CompilerServices;

namespace Dnm.Tests.Shared;

internal static class TestThreads
{
    // xunit runs test classes in parallel and `dotnet test` runs test projects in parallel. With torch's
    // default of one OpenMP thread per core, every process then oversubscribes the 2-core CI machine and
    // the spinning OpenMP workers slow each other down many times over. One torch thread per test process
    // keeps the machine's cores for the parallelism the test runner already has.
#pragma warning disable CA2255 // a module initializer is the one place that runs before any test in this assembly
    [ModuleInitializer]
    internal static void OneTorchThreadPerTestProcess() => TorchSharp.torch.set_num_threads(1);
#pragma warning restore CA2255
}
