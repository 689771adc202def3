using Dnm.Cluster.Hosting;
using Dnm.Core.Training;

namespace Dnm.Cluster.Tests;

/// <summary>
/// Entry point when this assembly is started as a process (`dotnet Dnm.Cluster.Tests.dll`): one cluster node
/// configured entirely by environment variables (NodeEnvironment, DNM_CONFIG), which is how the
/// multi-process specs start coordinators and workers. It prints one line per event for the spec to follow.
/// With `dataplane-peer ...` arguments it is instead the peer process of the data-plane benchmark
/// (<see cref="Dnm.Cluster.Transport.DataPlaneBenchmark"/>), which SharedMemorySpec runs across two processes.
/// </summary>
public static class Program
{
    public static async Task<int> Main(string[] args)
    {
        if (args is [Dnm.Cluster.Transport.DataPlaneBenchmark.PeerCommand, .. var peerArgs])
        {
            await Dnm.Cluster.Transport.DataPlaneBenchmark.RunPeerAsync(peerArgs);
            return 0;
        }

        using var cancel = new CancellationTokenSource();
        Console.CancelKeyPress += (_, e) => { e.Cancel = true; cancel.Cancel(); };
        // As `dnm node`: SIGTERM stops the node cleanly (a coordinator checkpoints its last complete step) and exits 0.
        using var sigterm = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGTERM, c =>
        {
            c.Cancel = true;
            cancel.Cancel();
        });
        try
        {
            var options = TestFaults.Apply(NodeEnvironment.Read());
            var config = NodeEnvironment.ReadConfig();
            var result = await NodeHost.RunAsync(options, config, new ConsoleObserver(), cancel.Token,
                joined: () => Console.WriteLine("up: this node is Up in the cluster"));
            Console.WriteLine($"done: {result.GlobalSteps} steps, checksum 0x{result.Checksum:X16}");
            return 0;
        }
        catch (RunStoppedException stop)
        {
            Console.WriteLine($"stopped: {stop.Message}");
            return 0;
        }
        catch (Exception e)
        {
            Console.WriteLine($"error: {e.Message}");
            return 1;
        }
    }

    private sealed class ConsoleObserver : ITrainingObserver
    {
        private readonly System.Diagnostics.Stopwatch clock = System.Diagnostics.Stopwatch.StartNew();
        public void OnStep(StepReport r) => Console.WriteLine($"step {r.GlobalStep} {r.Phase} loss {r.Loss.Total:F5} at {clock.Elapsed.TotalSeconds:F2}s ({r.Duration.TotalMilliseconds:F1} ms)");
        public void OnMessage(string message) => Console.WriteLine($"info: {message} at {clock.Elapsed.TotalSeconds:F2}s");
        public void OnCheckpoint(string path, long bytes, TimeSpan duration) => Console.WriteLine($"checkpoint: {Path.GetFileName(path)} at {clock.Elapsed.TotalSeconds:F2}s");
    }
}

/// <summary>
/// The test hook of a node process: <see cref="Variable"/> = "nan-at=S" or "delay-at=S,delay=SECONDS" gives the node's
/// worker those <see cref="WorkerFaults"/>, so the fault specs drive a worker of its own OS process. Test-only: the product
/// reads no such variable.
/// </summary>
internal static class TestFaults
{
    public const string Variable = "DNM_TEST_FAULTS";

    public static NodeOptions Apply(NodeOptions options)
    {
        if (Environment.GetEnvironmentVariable(Variable) is not { Length: > 0 } text) return options;
        var faults = new Dnm.Cluster.Workers.WorkerFaults();
        foreach (var part in text.Split(','))
        {
            var (key, value) = (part.Split('=')[0], long.Parse(part.Split('=')[1], System.Globalization.CultureInfo.InvariantCulture));
            faults = key switch
            {
                "nan-at" => faults with { NonFiniteAt = value },
                "delay-at" => faults with { DelayAt = value },
                "delay" => faults with { Delay = TimeSpan.FromSeconds(value) },
                _ => throw new ArgumentException($"{Variable}: unknown fault {key}"),
            };
        }
        return options with { WorkerFaults = new Dictionary<int, Dnm.Cluster.Workers.WorkerFaults> { [0] = faults } };
    }
}
