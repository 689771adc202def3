using Dnm.Core.Config;
using Dnm.Core.Model;
using Dnm.Core.Runtime;
using Dnm.Core.Som;
using Dnm.Core.Telemetry;
using static TorchSharp.torch;

namespace Dnm.Core.Training;

/// <summary>
/// Phase 3 of a step, on any replica: applies the statistics summed over every micro-batch of the global batch. Adds
/// the L2 gradient 2βθ once (<see cref="DnmLoss"/>: it is part of no micro-batch), steps Adam, and moves the prototypes
/// by the Kohonen rule. It needs no Forward before it: the coordinator's replica, which computes no micro-batch, applies
/// exactly what the workers apply.
/// </summary>
public sealed class StepUpdater : IDisposable
{
    private readonly DnmConfig config;
    private readonly DnmModel model;
    // The reduced statistics from statsOffset on, on the host, reused every step: on the CPU Adam reads the gradients where
    // they lie, so only the rest (the SOM's sums, from BmuSumsOffset) is copied; elsewhere all of it goes to the device.
    private readonly Tensor statsHost;
    private readonly int statsOffset;

    public StepUpdater(DnmConfig config, DnmModel model, StepLayout layout)
    {
        this.config = config;
        this.model = model;
        Layout = layout;
        Optimizer = new AdamOptimizer(model.Parameters, config.LearningRate, config.WarmupSteps);
        statsOffset = model.Device.type == TorchSharp.DeviceType.CPU ? layout.BmuSumsOffset : 0;
        statsHost = zeros(new long[] { layout.Length - statsOffset }).DetachFromDisposeScope();
        if (layout.Classes > 0) Classes = new NodeClasses(layout.Nodes, layout.Classes);
    }

    public AdamOptimizer Optimizer { get; }
    /// <summary>Semi-supervised training: the nodes' learned class counts, moved by every joint step's reduced counts (null otherwise).</summary>
    public NodeClasses? Classes { get; }
    public StepLayout Layout { get; }

    /// <summary>
    /// Applies <paramref name="reducedStats"/> of a <paramref name="mode"/> step (nothing, when they hold NaN or infinity: the
    /// result is then <see cref="StepLoss.Skipped"/>) of <paramref name="globalBatch"/> samples.
    /// On the CPU the Adam update is one fused pass run by <paramref name="parallelFor"/> (items, body). <paramref name="trace"/>,
    /// when given, times the Adam part as <see cref="StepPhase.Apply"/> and the Kohonen part as <see cref="StepPhase.SomUpdate"/>.
    /// </summary>
    public StepLoss Apply(ReadOnlySpan<float> reducedStats, int globalBatch, StepMode mode, ScheduleValues schedule, Action<int, Action<int>> parallelFor,
        StepTrace? trace = null)
    {
        // One NaN or infinity in the sums (a gradient, a BMU sum, a loss part) would poison θ, Adam's moments or W for
        // good. Every replica applies this same vector, so every replica skips alike and they stay equal.
        if (!NonFiniteSteps.AllFinite(reducedStats[..Layout.Length]))
            return DnmLoss.StepLossOf(config, Layout, reducedStats, globalBatch, mode, 0, model.Shape.Pixels) with { Skipped = true };
        var adam = trace?.Phase(StepPhase.Apply);
        using var scope = NewDisposeScope();
        var device = model.Device;
        reducedStats[statsOffset..Layout.Length].CopyTo(HostTensor.Floats(statsHost));
        // flat[k] is the statistics' element statsOffset + k.
        var flat = statsHost.to(device);
        double l2;
        if (device.type == TorchSharp.DeviceType.CPU)
        {
            // One fused pass over host memory (see AdamOptimizer.StepOnHost).
            l2 = StepOnHost(reducedStats, parallelFor);
        }
        else
        {
            // statsOffset is 0 here: the gradients are the tensor's first elements.
            var grads = new Tensor[model.Parameters.Count];
            long offset = 0;
            for (int i = 0; i < grads.Length; i++)
            {
                var n = model.Parameters[i].numel();
                grads[i] = flat.narrow(0, offset, n).view_as(model.Parameters[i]);
                offset += n;
            }
            l2 = DnmLoss.AddL2Gradient(grads, model.Parameters, model.IsEncoderParameter, config.Beta);
            Optimizer.Step(grads);
        }
        adam?.Dispose();
        if (mode == StepMode.Joint)
        {
            using var somUpdate = trace?.Phase(StepPhase.SomUpdate);
            var sums = flat.narrow(0, Layout.BmuSumsOffset - statsOffset, Layout.Nodes * Layout.Latent).view(Layout.Nodes, Layout.Latent);
            var counts = flat.narrow(0, Layout.BmuCountsOffset - statsOffset, Layout.Nodes);
            model.Som.Update(sums, counts, globalBatch, schedule, config.SomRule);
            Classes?.Accumulate(reducedStats.Slice(Layout.ClassCountsOffset, Layout.Nodes * Layout.Classes));
        }
        return DnmLoss.StepLossOf(config, Layout, reducedStats, globalBatch, mode, l2, model.Shape.Pixels);
    }

    private unsafe double StepOnHost(ReadOnlySpan<float> reducedStats, Action<int, Action<int>> parallelFor)
    {
        fixed (float* gradients = reducedStats)
            return Optimizer.StepOnHost(gradients, Layout.Parameters, model.IsEncoderParameter, config.Beta, parallelFor);
    }

    public void Dispose()
    {
        Optimizer.Dispose();
        statsHost.Dispose();
    }
}
