using Dnm.Core.Runtime;
using Dnm.Core.Config;
using Dnm.Core.Model;
using Dnm.Core.Som;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Dnm.Core.Training;

/// <summary>
/// One micro-batch, forwarded and differentiated on its own thread against the shared model (θ, φ and W are only
/// read during these phases); the loss is <see cref="DnmLoss.MicroBatchLoss"/>. Its statistics have the
/// <see cref="StepLayout"/> of the whole step, so micro-batches' vectors sum in the fixed tree wherever they were
/// computed. Gradients come from autograd.grad, not backward(): micro-batches that run at the same time must not
/// accumulate into the shared parameters' .grad.
/// </summary>
internal sealed class StepShard : IDisposable
{
    private readonly DnmConfig config;
    private readonly DnmModel dnm;
    private readonly Autoencoder model;
    private readonly SomLattice som;
    private readonly Parameter[] parameters;
    private readonly Device device;
    private readonly Tensor inputHost;  // (capacity, C, H, W) on the CPU, written by the engine's thread
    private readonly Tensor statsHost;  // (layout.Length) on the CPU
    private readonly Tensor targetsHost; // (capacity, D): the samples' smoothed targets ẑ, when the smoothing term is on
    private readonly Tensor corruptedHost; // (capacity, C, H, W): the denoising autoencoder's corrupted inputs x̃, when denoise is on
    private readonly Tensor labelsHost;    // (capacity) long: the samples' labels in semi-supervised training, -1 where unlabelled
    private readonly StepLayout layout;

    private DisposeScope? scope;
    private bool hasTargets, hasCorrupted;
    private StepMode mode;
    private Tensor? x, z, xHat, squaredDistances, q;

    public StepShard(DnmConfig config, DnmModel dnm, StepLayout layout, int capacity)
    {
        this.config = config;
        this.dnm = dnm;
        model = dnm.Autoencoder;
        som = dnm.Som;
        parameters = dnm.Parameters.ToArray();
        device = dnm.Device;
        var s = model.Shape;
        inputHost = zeros(new long[] { Math.Max(capacity, 1), s.Channels, s.Height, s.Width }).DetachFromDisposeScope();
        statsHost = zeros(new long[] { layout.Length }).DetachFromDisposeScope();
        targetsHost = zeros(new long[] { config.SmoothWeight > 0 ? Math.Max(capacity, 1) : 1, layout.Latent }).DetachFromDisposeScope();
        corruptedHost = zeros(config.Denoise.Enabled ? new long[] { Math.Max(capacity, 1), s.Channels, s.Height, s.Width } : new long[] { 1 }).DetachFromDisposeScope();
        labelsHost = full(new long[] { layout.Classes > 0 ? Math.Max(capacity, 1) : 1 }, -1L, dtype: ScalarType.Int64).DetachFromDisposeScope();
        this.layout = layout;
        SoftCounts = new float[layout.Nodes];
    }

    /// <summary>Samples in the step in flight (0: idle, contributes nothing).</summary>
    public int Count { get; private set; }

    /// <summary>This shard's f^(k) after <see cref="Forward"/>.</summary>
    public float[] SoftCounts { get; }

    /// <summary>This shard's statistics after <see cref="Backward"/>; the engine sums shards' vectors in place here.</summary>
    public Span<float> StatsBuffer => Runtime.HostTensor.Floats(statsHost);

    /// <summary>
    /// Engine thread: copies this shard's images into its input buffer, and where given their corrupted copies (the
    /// autoencoder's input when denoising), smoothed targets and semi-supervised labels (-1: unlabelled).
    /// </summary>
    public void Load(ReadOnlySpan<float> images, ReadOnlySpan<float> corrupted, ReadOnlySpan<float> targets, ReadOnlySpan<int> labels, int count)
    {
        Count = count;
        images.CopyTo(Runtime.HostTensor.Floats(inputHost));
        hasTargets = !targets.IsEmpty;
        if (hasTargets) targets.CopyTo(Runtime.HostTensor.Floats(targetsHost));
        hasCorrupted = !corrupted.IsEmpty;
        if (hasCorrupted) corrupted.CopyTo(Runtime.HostTensor.Floats(corruptedHost));
        if (layout.Classes > 0)
        {
            var host = labelsHost.data<long>();
            for (int i = 0; i < count; i++) host[i] = labels.IsEmpty ? -1 : labels[i];
        }
    }

    /// <summary>Shard thread: phase 1 on the loaded images.</summary>
    public void Forward(StepMode stepMode)
    {
        End();
        mode = stepMode;
        // An empty micro-batch (a batch shorter than its micro-batch count) contributes zeros.
        if (Count == 0)
        {
            Array.Clear(SoftCounts);
            return;
        }
        scope = NewDisposeScope();
        x = inputHost.narrow(0, 0, Count).to(device);
        // Denoising: the encoder sees x̃, the reconstruction is compared with the clean x (Backward).
        z = model.Encode(hasCorrupted ? corruptedHost.narrow(0, 0, Count).to(device) : x);
        xHat = model.Decode(z);
        if (mode == StepMode.Joint)
        {
            squaredDistances = som.SquaredDistances(z);
            q = DnmLoss.SoftAssignment(squaredDistances, config.Dof);
            using var f = q.detach().sum(dim: 0).cpu();
            Runtime.HostTensor.Floats(f).CopyTo(SoftCounts);
        }
    }

    /// <summary>
    /// Shard thread: phase 2 with the global soft counts (and, in semi-supervised training, the nodes' class distributions
    /// P(c | j) as of this step); then the step's tensors are released.
    /// </summary>
    public void Backward(Tensor globalSoftCounts, Tensor? classProbabilities, int globalBatch)
    {
        if (Count == 0)
        {
            StatsBuffer.Clear();
            return;
        }
        if (x is null || z is null || xHat is null) throw new InvalidOperationException("Backward before Forward");
        try
        {
            var joint = mode == StepMode.Joint && q is not null && squaredDistances is not null;
            var targets = joint && hasTargets && config.SmoothWeight > 0 ? targetsHost.narrow(0, 0, Count).to(device) : null;
            var (loss, squaredError, klSum, smoothingSum) = DnmLoss.MicroBatchLoss(config, x, xHat, z, joint ? q : null, globalSoftCounts, targets, globalBatch);
            Tensor bmuSums, bmuCounts;
            Tensor? bmu = null;
            if (joint)
            {
                bmu = squaredDistances!.detach().argmin(1);
                (bmuSums, bmuCounts) = som.BmuStatistics(z.detach(), bmu);
            }
            else
            {
                bmuSums = zeros(new long[] { som.Nodes, som.Dim }, device: device);
                bmuCounts = zeros(new long[] { som.Nodes }, device: device);
            }
            Tensor? classCounts = null, supervisedSum = null, labelled = null;
            if (layout.Classes > 0)
            {
                var labels = labelsHost.narrow(0, 0, Count).to(device);
                using var zero = TorchScalars.Of(0);
                labelled = labels.ge(zero).sum().to_type(ScalarType.Float32).reshape(1);
                if (joint && classProbabilities is not null)
                {
                    (loss, supervisedSum) = DnmLoss.AddSupervised(config, loss, q!, classProbabilities, labels, globalBatch);
                    classCounts = SemiSupervisedCounts(bmu!, labels);
                }
                else
                {
                    supervisedSum = zeros(1, device: device);
                    classCounts = zeros(new long[] { (long)som.Nodes * layout.Classes }, device: device);
                }
            }
            var grads = torch.autograd.grad([loss], parameters);
            // Each part straight into its slice of the statistics: no concatenated copy (for the fully connected model
            // a whole extra pass over 13 MB per micro-batch).
            long offset = 0;
            void Put(Tensor part)
            {
                var n = part.numel();
                using var slice = statsHost.narrow(0, offset, n);
                slice.copy_(part.reshape(n));
                offset += n;
            }
            foreach (var g in grads) Put(g);
            Put(bmuSums);
            Put(bmuCounts);
            Put(stack(new[]
            {
                klSum.detach().reshape(1), squaredError.detach().reshape(1), smoothingSum.detach().reshape(1),
                tensor(new float[] { Count }, device: device),
            }));
            if (classCounts is not null)
            {
                Put(classCounts);
                Put(stack(new[] { supervisedSum!.detach().reshape(1), labelled!.reshape(1) }));
            }
        }
        finally
        {
            End();
        }
    }

    /// <summary>The labelled samples' (node, class) counts, nodes × classes flattened: the mergeable part of <see cref="NodeClasses"/>.</summary>
    private Tensor SemiSupervisedCounts(Tensor bmu, Tensor labels)
    {
        using var zero = TorchScalars.Of(0);
        using var one = TorchScalars.Of(1.0);
        var picked = labels.ge(zero).nonzero().squeeze(1);
        var counts = zeros(new long[] { (long)som.Nodes * layout.Classes }, device: device);
        if (picked.numel() == 0) return counts;
        // Integral scalars: an int64 tensor takes no floating-point multiplier or alpha.
        using var classes = ((long)layout.Classes).ToScalar();
        using var unit = 1L.ToScalar();
        var cell = bmu.index_select(0, picked).mul(classes).add(labels.index_select(0, picked), unit);
        return counts.index_add_(0, cell, ones(new long[] { picked.shape[0] }, device: device), one);
    }

    /// <summary>
    /// Shard thread: embeddings of the loaded images, without gradient, into <paramref name="target"/>; returns their
    /// squared reconstruction error, summed over pixels and images, when <paramref name="reconstruct"/> (else 0).
    /// </summary>
    public double EmbedInto(Tensor target, bool reconstruct) =>
        Count == 0 ? 0 : dnm.EmbedMicroBatch(inputHost.narrow(0, 0, Count).to(device), target, reconstruct);

    /// <summary>Shard thread: drops the step's tensors.</summary>
    public void End()
    {
        x = z = xHat = squaredDistances = q = null;
        scope?.Dispose();
        scope = null;
    }

    public void Dispose()
    {
        inputHost.Dispose();
        statsHost.Dispose();
        targetsHost.Dispose();
        corruptedHost.Dispose();
        labelsHost.Dispose();
    }
}
