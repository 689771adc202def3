using System.Diagnostics;
using System.Globalization;
using Dnm.Core.Config;
using Dnm.Core.Model;
using Dnm.Core.Runtime;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Dnm.Bench;

/// <summary>
/// Where a step's time goes: each layer of the paper's model (and candidate formulations of it) timed
/// in isolation on the calling thread, forward alone and forward + backward. Torch runs single-threaded
/// (as in a step's shards), so --batch 43 matches one shard of the 256-sample step.
/// </summary>
internal static class LayerProfile
{
    public static int Run(IReadOnlyList<string> args)
    {
        var options = StepBenchmarkOptions.Parse(args, new StepBenchmarkOptions(Steps: 7));
        TorchRuntime.Initialize(DeviceSpec.Parse("cpu"), options.Threads, Console.Error.WriteLine);
        var b = options.Batch;
        var reps = options.Steps;
        Console.WriteLine($"batch {b}, {get_num_threads()} threads, median of {reps} (ms)");
        foreach (var (cin, cout) in new[] { (1, 10), (10, 8), (8, 5), (5, 8), (8, 10), (10, 1) })
        {
            var x = randn(b, cin, 28, 28).requires_grad_(true).DetachFromDisposeScope();
            var w = (randn(cout, cin, 5, 5) * 0.1).requires_grad_(true).DetachFromDisposeScope();
            var wt = (randn(cin, cout, 5, 5) * 0.1).requires_grad_(true).DetachFromDisposeScope();
            var bias = zeros(cout).requires_grad_(true).DetachFromDisposeScope();
            var label = $"{cin,2}->{cout,-2}";
            Time($"conv2d      {label}", reps, () => F.conv2d(x, w, bias, padding: [2, 2]), backward: false);
            Time($"conv2d      {label}", reps, () => F.conv2d(x, w, bias, padding: [2, 2]), backward: true);
            Time($"convT2d     {label}", reps, () => F.conv_transpose2d(x, wt, bias, padding: [2, 2]), backward: true);
            using var direct = new SameConv2d(cin, cout, 5);
            Time($"direct      {label}", reps, () => direct.forward(x), backward: false);
            Time($"direct      {label}", reps, () => direct.forward(x), backward: true);
            foreach (var t in new[] { x, w, wt, bias }) t.Dispose();
        }
        {
            var x = randn(b, 3920).requires_grad_(true).DetachFromDisposeScope();
            var w = (randn(100, 3920) * 0.01).requires_grad_(true).DetachFromDisposeScope();
            Time("dense 3920->100", reps, () => F.linear(x, w), backward: true);
            var z = randn(b, 100).requires_grad_(true).DetachFromDisposeScope();
            var w2 = (randn(3920, 100) * 0.01).requires_grad_(true).DetachFromDisposeScope();
            Time("dense 100->3920", reps, () => F.linear(z, w2), backward: true);
        }
        return 0;
    }

    private static void Time(string name, int reps, Func<Tensor> forward, bool backward)
    {
        var ms = new List<double>();
        for (int i = 0; i < reps + 1; i++)
        {
            using var scope = NewDisposeScope();
            var t0 = Stopwatch.GetTimestamp();
            var y = forward();
            if (backward) y.pow(2).sum().backward();
            if (i > 0) ms.Add(Stopwatch.GetElapsedTime(t0).TotalMilliseconds);
        }
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{name,-22} {(backward ? "fwd+bwd" : "fwd    ")} {StepBenchmark.Median(ms),8:F1}"));
    }
}
