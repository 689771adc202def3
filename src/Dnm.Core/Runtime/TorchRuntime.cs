using Dnm.Core.Config;
using TorchSharp;
using static TorchSharp.torch;

namespace Dnm.Core.Runtime;

/// <summary>
/// What start-up decided about the native runtime, for the log and the run directory. On the CPU,
/// <paramref name="Threads"/> is the number of batch shards a training step runs in parallel (torch
/// itself runs single-threaded in each).
/// </summary>
public sealed record RuntimeReport(string Device, int Threads, bool MkldnnEnabled, bool HeapTuned, IReadOnlyList<string> Notes);

/// <summary>
/// Initialises torch for this process: device, threads, allocator and the numerics self-check.
/// Call once at start-up, before any model is built.
/// </summary>
public static class TorchRuntime
{
    // The oneDNN and NNPACK switches are process-wide native state, so the decision is too: it is
    // made once, by whichever comes first, Initialize or the first StepEngine.
    private static readonly Lazy<CpuNumerics> cpuNumerics = new(DecideCpuNumerics, LazyThreadSafetyMode.ExecutionAndPublication);

    private sealed record CpuNumerics(bool MkldnnEnabled, bool HeapTuned, IReadOnlyList<string> Notes);

    /// <param name="threads">Threads of a training step on the CPU; 0 = one per core (see <see cref="StepThreads"/>).</param>
    public static (Device Device, RuntimeReport Report) Initialize(DeviceSpec spec, int threads, Action<string>? log = null)
    {
        var device = Resolve(spec);
        if (device.type == DeviceType.CPU)
        {
            var cpu = cpuNumerics.Value;
            foreach (var n in cpu.Notes) log?.Invoke(n);
            return (device, new RuntimeReport(device.ToString(), StepThreads(threads), cpu.MkldnnEnabled, cpu.HeapTuned, cpu.Notes));
        }
        var heapTuned = NativeTuning.KeepLargeAllocationsOnHeap();
        SetIntraOpThreads(device, threads);
        return (device, new RuntimeReport(device.ToString(), torch.get_num_threads(), true, heapTuned, []));
    }

    /// <summary>
    /// A run's --threads for torch's intra-op threads of the calling thread (a replica's torch thread): on a GPU they are
    /// torch's own (0 keeps its default); on the CPU one, since --threads is the number of batch shards there
    /// (<see cref="StepThreads"/>). OpenMP's thread count belongs to each thread: a thread that never sets it forks a team
    /// of one per core for every large kernel it runs (a replica's evaluation, its state import), and with several
    /// replicas on shared cores those teams spin on the cores the steps need.
    /// </summary>
    public static void SetIntraOpThreads(Device device, int threads)
    {
        if (device.type == DeviceType.CPU) torch.set_num_threads(1);
        else if (threads > 0) torch.set_num_threads(threads);
    }

    /// <summary>The number of batch shards (threads) a CPU training step uses for a configured thread count (0 = one per core).</summary>
    public static int StepThreads(int configured) => configured > 0 ? configured : Environment.ProcessorCount;

    /// <summary>Makes sure CPU convolutions are numerically sound before any model runs on the CPU.</summary>
    public static void EnsureCpuNumerics() => _ = cpuNumerics.Value;

    private static CpuNumerics DecideCpuNumerics()
    {
        var notes = new List<string>();
        void Note(string s) => notes.Add(s);
        var heapTuned = NativeTuning.KeepLargeAllocationsOnHeap();
        // Torch's own intra-op threads stay at one: the step engine runs one batch shard per thread
        // instead. Torch's fork/join per kernel (thousands per step, many too small to split) scaled
        // worse than one thread already on an idle machine, and collapsed when the cores were shared.
        torch.set_num_threads(1);
        var device = CPU;
        var mkldnn = true;
        {
            if (NativeTuning.DisableNnpackWhereUnsupported()) Note("NNPACK disabled: this CPU does not support it");
            var check = NumericsSelfCheck.Run(device);
            if (!check.Passed)
            {
                NativeTuning.SetMkldnnEnabled(false);
                var again = NumericsSelfCheck.Run(device);
                if (!again.Passed)
                    throw new InvalidOperationException(
                        $"CPU convolution kernels give wrong results even with oneDNN off ({again.Detail}); this machine cannot train reliably");
                mkldnn = false;
                Note($"oneDNN disabled: float32 conv/conv-transpose self-check failed against float64 ({check.Detail}); " +
                     $"without oneDNN it passes ({again.Detail})");
            }
        }
        return new CpuNumerics(mkldnn, heapTuned, notes);
    }

    public static Device Resolve(DeviceSpec spec)
    {
        var cudaAvailable = torch.cuda.is_available();
        switch (spec.Kind)
        {
            case "cpu":
                return CPU;
            case "auto":
                return cudaAvailable ? CUDA : CPU;
            default:
                if (!cudaAvailable)
                    throw new ConfigException(
                        $"device '{spec}' requested but CUDA is not available (this build uses the CPU TorchSharp backend, " +
                        "or no GPU is visible); use --device cpu, or build with -p:TorchBackend=cuda on a GPU host");
                var count = torch.cuda.device_count();
                if (spec.Index is { } i && i >= count)
                    throw new ConfigException($"device '{spec}' requested but only {count} CUDA device(s) are visible");
                return spec.Index is { } idx ? new Device(DeviceType.CUDA, idx) : CUDA;
        }
    }
}
