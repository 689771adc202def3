using Dnm.Core.Config;
using Dnm.Core.Data;
using Dnm.Core.Model;
using Dnm.Core.Som;
using Dnm.Core.Telemetry;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Dnm.Core.Training;

/// <summary>
/// One replica of the model and the three phases of a data-parallel DNM step. Nothing here knows
/// about workers or networks: the caller sums the vectors of phase 1 and 2 over all replicas (or,
/// for one process, passes them straight through) and hands the sums back.
/// <list type="number">
/// <item><see cref="Forward"/>: encode and decode the local shard; write the local soft counts f^(k).</item>
/// <item><see cref="Backward"/>: with the global f, compute P, the loss, its gradient and the SOM statistics.</item>
/// <item><see cref="Apply"/>: apply the reduced statistics: L2, Adam, Kohonen rule. Identical on every replica.</item>
/// </list>
/// The three calls of a step must run on one thread: the step's tensors live in a dispose scope
/// that <see cref="Forward"/> opens and <see cref="Apply"/> (or <see cref="Abort"/>) closes.
/// </summary>
public sealed class StepEngine : IDisposable
{
    private readonly DnmConfig config;
    private readonly Device device;
    private readonly Parameter[] parameters;
    private readonly bool[] isEncoderParameter;
    private readonly Tensor inputHost;   // (maxBatch, C, H, W) on CPU, reused every step
    private readonly Tensor statsHost;   // (layout.Length) on CPU, reused every step
    private readonly SomRule rule;

    private DisposeScope? stepScope;
    private StepMode pendingMode;
    private Tensor? x, z, xHat, squaredDistances, q;

    public StepEngine(DnmConfig config, ImageShape shape, Device device, int maxLocalBatch)
    {
        this.config = config;
        this.device = device;
        if (device.type == DeviceType.CPU) Runtime.TorchRuntime.EnsureCpuNumerics();
        // The seed fixes θ, φ: every replica builds the identical model.
        torch.manual_seed((long)config.Seed);
        Model = new ConvAutoencoder(shape, config);
        Model.to(device);
        parameters = Model.parameters().ToArray();
        var encoder = Model.EncoderParameters().Select(p => p.Handle).ToHashSet();
        isEncoderParameter = parameters.Select(p => encoder.Contains(p.Handle)).ToArray();
        Som = new SomLattice(config.MapRows, config.MapCols, config.Latent, device);
        Optimizer = new AdamOptimizer(parameters, config.LearningRate);
        Layout = new StepLayout(parameters.Sum(p => (int)p.numel()), Som.Nodes, config.Latent);
        inputHost = zeros(new long[] { maxLocalBatch, shape.Channels, shape.Height, shape.Width }).DetachFromDisposeScope();
        statsHost = zeros(new long[] { Layout.Length }).DetachFromDisposeScope();
        MaxLocalBatch = maxLocalBatch;
        rule = config.SomRule == "batch" ? SomRule.Batch : SomRule.Minibatch;
    }

    public ConvAutoencoder Model { get; }
    public SomLattice Som { get; }
    public AdamOptimizer Optimizer { get; }
    public StepLayout Layout { get; }
    public Device Device => device;
    public int MaxLocalBatch { get; }
    public IReadOnlyList<Parameter> Parameters => parameters;

    /// <summary>Phase 1. <paramref name="images"/> holds <paramref name="count"/> images (may be 0 on an idle worker).</summary>
    public void Forward(ReadOnlySpan<float> images, int count, StepMode mode, Span<float> localSoftCounts)
    {
        if (stepScope is not null) throw new InvalidOperationException("a step is already in flight; call Apply or Abort first");
        if (count > MaxLocalBatch) throw new ArgumentException($"local batch {count} exceeds the engine's maximum {MaxLocalBatch}");
        stepScope = NewDisposeScope();
        pendingMode = mode;
        var pixels = (int)(inputHost.numel() / MaxLocalBatch);
        var host = inputHost.narrow(0, 0, count);
        // An empty shard (an idle worker, or a replica that only applies) has nothing to copy; the accessor rejects an empty tensor.
        if (count > 0) host.data<float>().CopyFrom(images[..(count * pixels)]);
        x = host.to(device);
        z = Model.Encode(x);
        xHat = Model.Decode(z);
        if (mode == StepMode.Joint)
        {
            squaredDistances = Som.SquaredDistances(z);
            q = DnmLoss.SoftAssignment(squaredDistances);
            using var f = q.detach().sum(dim: 0).cpu();
            f.data<float>().CopyTo(localSoftCounts);
        }
    }

    /// <summary>Phase 2: writes this shard's statistics (see <see cref="StepLayout"/>) into <paramref name="localStats"/>.</summary>
    public void Backward(ReadOnlySpan<float> globalSoftCounts, int globalBatch, Span<float> localStats)
    {
        if (stepScope is null || x is null || z is null || xHat is null) throw new InvalidOperationException("Backward before Forward");
        Model.zero_grad();
        var count = x.shape[0];
        var squaredError = (xHat - x).pow(2).sum();
        var pixels = (double)(x.numel() / Math.Max(count, 1));
        // Each part is divided by the *global* B: the replicas' gradients then sum to the global gradient.
        var loss = squaredError * (config.Gamma / (globalBatch * pixels));
        Tensor klSum = zeros(1, device: device);
        Tensor bmuSums, bmuCounts;
        if (pendingMode == StepMode.Joint && q is not null && squaredDistances is not null)
        {
            var p = config.Target == "authors"
                ? DnmLoss.TargetWithoutFrequency(q)
                : DnmLoss.Target(q.detach(), torch.tensor(globalSoftCounts.ToArray(), device: device));
            klSum = DnmLoss.KlSum(p, q);
            loss = loss + klSum / globalBatch;
            var bmu = squaredDistances.detach().argmin(1);
            (bmuSums, bmuCounts) = Som.BmuStatistics(z.detach(), bmu);
        }
        else
        {
            bmuSums = zeros(new long[] { Som.Nodes, Som.Dim }, device: device);
            bmuCounts = zeros(new long[] { Som.Nodes }, device: device);
        }
        if (count > 0) loss.backward();

        var parts = new List<Tensor>(parameters.Length + 3);
        foreach (var prm in parameters) parts.Add(prm.grad is { } g && count > 0 ? g.flatten() : zeros(prm.numel(), device: device));
        parts.Add(bmuSums.flatten());
        parts.Add(bmuCounts);
        parts.Add(stack(new[] { klSum.detach().reshape(1), squaredError.detach().reshape(1), tensor(new float[] { count }, device: device) }).flatten());
        using var flat = cat(parts, 0);
        statsHost.copy_(flat);
        statsHost.data<float>().CopyTo(localStats);
    }

    /// <summary>
    /// Phase 3: applies the statistics summed over every replica. Adds the L2 gradient 2βθ once (it is
    /// not part of any shard), steps Adam, and moves the prototypes by the Kohonen rule.
    /// <paramref name="trace"/>, when given, times the Adam part as <see cref="StepPhase.Apply"/> and the
    /// Kohonen part as <see cref="StepPhase.SomUpdate"/>: only the engine can tell them apart.
    /// </summary>
    public StepLoss Apply(ReadOnlySpan<float> reducedStats, int globalBatch, ScheduleValues schedule, StepTrace? trace = null)
    {
        if (stepScope is null) throw new InvalidOperationException("Apply before Forward");
        try
        {
            var adam = trace?.Phase(StepPhase.Apply);
            statsHost.data<float>().CopyFrom(reducedStats);
            var flat = statsHost.to(device);
            var grads = new Tensor[parameters.Length];
            long offset = 0;
            for (int i = 0; i < parameters.Length; i++)
            {
                var n = parameters[i].numel();
                grads[i] = flat.narrow(0, offset, n).view_as(parameters[i]);
                offset += n;
            }
            double l2 = 0;
            using (no_grad())
            {
                if (config.Beta > 0)
                {
                    for (int i = 0; i < parameters.Length; i++)
                    {
                        if (!isEncoderParameter[i]) continue;
                        grads[i] = grads[i] + parameters[i] * (2 * config.Beta);
                        l2 += parameters[i].pow(2).sum().item<float>();
                    }
                }
            }
            Optimizer.Step(grads);
            adam?.Dispose();
            if (pendingMode == StepMode.Joint)
            {
                using var somUpdate = trace?.Phase(StepPhase.SomUpdate);
                var sums = flat.narrow(0, Layout.BmuSumsOffset, Layout.Nodes * Layout.Latent).view(Layout.Nodes, Layout.Latent);
                var counts = flat.narrow(0, Layout.BmuCountsOffset, Layout.Nodes);
                Som.Update(sums, counts, globalBatch, schedule, rule);
            }
            var b = (double)globalBatch;
            var kl = reducedStats[Layout.KlSumIndex] / b;
            var recon = reducedStats[Layout.SquaredErrorSumIndex] / (b * Model.Shape.Pixels);
            var total = kl + config.Gamma * recon + config.Beta * l2;
            return new StepLoss(kl, recon, config.Beta * l2, total, (int)reducedStats[Layout.SampleCountIndex]);
        }
        finally
        {
            EndStep();
        }
    }

    /// <summary>Drops the step in flight (a worker left; the step is retried with new shards).</summary>
    public void Abort() => EndStep();

    private void EndStep()
    {
        Model.zero_grad();
        x = z = xHat = squaredDistances = q = null;
        stepScope?.Dispose();
        stepScope = null;
    }

    /// <summary>Embeddings of a batch without gradient, for evaluation and SOM pre-training. Caller owns the scope.</summary>
    public Tensor Embed(ReadOnlySpan<float> images, int count)
    {
        using var _ = no_grad();
        var pixels = (int)(inputHost.numel() / MaxLocalBatch);
        var host = inputHost.narrow(0, 0, count);
        host.data<float>().CopyFrom(images[..(count * pixels)]);
        return Model.Encode(host.to(device));
    }

    public void Dispose()
    {
        EndStep();
        Optimizer.Dispose();
        Som.Dispose();
        Model.Dispose();
        inputHost.Dispose();
        statsHost.Dispose();
    }
}
