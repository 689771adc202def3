using Dnm.Core.Config;
using Dnm.Core.Data;
using Dnm.Core.Runtime;
using Dnm.Core.Som;
using Dnm.Core.Training;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Dnm.Core.Model;

/// <summary>Embeds images in micro-batches: the training engine (on its shard threads) or the model alone (inference).</summary>
public interface IEmbedder
{
    DnmModel Model { get; }

    /// <summary>The largest batch one call may hold.</summary>
    int MaxBatch { get; }

    /// <summary>
    /// (count, D) embeddings of <paramref name="count"/> images, computed micro-batch by micro-batch (so each row is the same
    /// bits whoever computes it), and their squared reconstruction error summed in micro-batch order. Caller owns the result.
    /// </summary>
    Tensor Embed(ReadOnlySpan<float> images, int count, out double squaredError);
}

/// <summary>
/// The trained object: the autoencoder (θ, φ) and the lattice (W), with their state's export, import and checksum.
/// It is all that inference (`dnm eval`, `dnm map`) builds: no optimizer state, no step threads. Training wraps it in a
/// <see cref="StepEngine"/> (micro-batch executor) and a <see cref="StepUpdater"/> (Adam, L2, Kohonen rule).
/// </summary>
public sealed class DnmModel : IEmbedder, IDisposable
{
    private static readonly Lock InitGate = new();

    private DnmModel(DnmConfig config, ImageShape shape, Device device)
    {
        if (device.type == DeviceType.CPU) Runtime.TorchRuntime.EnsureCpuNumerics();
        // The seed fixes θ, φ: every replica builds the identical model. The draws come from torch's one global
        // generator, so two models built at once on two threads (embedded workers, parallel test classes)
        // would interleave them: builds take turns.
        lock (InitGate)
        {
            torch.manual_seed((long)config.Seed);
            Autoencoder = Autoencoder.Create(shape, config);
        }
        Autoencoder.to(device);
        Device = device;
        var named = Autoencoder.named_parameters().ToArray();
        ParameterNames = named.Select(p => p.name).ToArray();
        Parameters = named.Select(p => p.parameter).ToArray();
        var encoder = Autoencoder.EncoderParameters().Select(p => p.Handle).ToHashSet();
        IsEncoderParameter = Parameters.Select(p => encoder.Contains(p.Handle)).ToArray();
        Som = new SomLattice(MapGrid.Of(config), config.Latent, device);
        MicroBatches = MicroBatches.For(config.MicroBatch, Autoencoder.StepBufferBytesPerSample, MaxStepBufferBytes);
    }

    /// <summary>
    /// Runs <paramref name="draw"/>, which draws from torch's one global generator (a module's initial weights, an unseeded
    /// rand), in turn with the seeded model builds, so that it cannot take draws from the middle of a build (specs: test
    /// classes run in parallel, and a build beside a torch module's construction got other weights).
    /// </summary>
    internal static T Drawing<T>(Func<T> draw)
    {
        lock (InitGate)
            return draw();
    }

    /// <summary>Builds the model <paramref name="config"/> describes for images of <paramref name="shape"/>, seeded from the config.
    /// A model over <see cref="DnmConfig.Limits.ModelParameters"/> for these images is a <see cref="ConfigException"/>, before
    /// anything is allocated.</summary>
    public static DnmModel Create(DnmConfig config, ImageShape shape, Device device)
    {
        if ((ModelLayout.ShapeProblem(shape) ?? ModelLayout.Problem(config, shape)) is { } problem) throw new ConfigException(problem);
        return new(config, shape, device);
    }

    /// <summary>
    /// Bound on one micro-batch's largest libtorch buffer (below glibc's 64 MB per-thread heap): glibc serves a larger block
    /// on a non-main thread with mmap and frees it with munmap, which at 128 samples a shard cost ~370 000 page faults a
    /// step and 9x the CPU time.
    /// </summary>
    public const long MaxStepBufferBytes = 48L << 20;

    public Autoencoder Autoencoder { get; }
    public SomLattice Som { get; }
    public Device Device { get; }
    public ImageShape Shape => Autoencoder.Shape;

    /// <summary>θ and φ, in the autoencoder's order.</summary>
    public IReadOnlyList<Parameter> Parameters { get; }
    public IReadOnlyList<string> ParameterNames { get; }

    /// <summary>Which parameters are the encoder's θ (the L2 penalty's).</summary>
    public IReadOnlyList<bool> IsEncoderParameter { get; }

    /// <summary>How every batch is cut into micro-batches, whatever the thread count and the world size.</summary>
    public MicroBatches MicroBatches { get; }

    DnmModel IEmbedder.Model => this;

    public int MaxBatch => int.MaxValue;

    /// <summary>θ, φ and W as named host arrays (<c>param/…</c>, <c>som/w</c>).</summary>
    public IReadOnlyList<NamedArray> Export() =>
        [.. Parameters.Select((p, i) => EngineState.ToArray($"param/{ParameterNames[i]}", p)), EngineState.ToArray("som/w", Som.Prototypes)];

    /// <summary>Loads θ, φ and W from exported state (other entries, such as optimizer moments, are ignored).</summary>
    public void Import(IReadOnlyDictionary<string, NamedArray> byName)
    {
        using var _ = no_grad();
        for (int i = 0; i < Parameters.Count; i++) EngineState.Load(byName, $"param/{ParameterNames[i]}", Parameters[i]);
        EngineState.Load(byName, "som/w", Som.Prototypes);
    }

    /// <summary>
    /// A 64-bit FNV-1a hash of the bit patterns of θ, φ and W. Replicas that applied identical updates have identical
    /// bits, so any difference means they diverged.
    /// </summary>
    public ulong Checksum()
    {
        ulong h = 14695981039346656037UL;
        foreach (var t in Parameters.Cast<Tensor>().Append(Som.Prototypes))
        {
            using var host = t.detach().cpu().contiguous();
            foreach (var b in System.Runtime.InteropServices.MemoryMarshal.AsBytes(host.data<float>().ToArray().AsSpan()))
            {
                h ^= b;
                h *= 1099511628211UL;
            }
        }
        return h;
    }

    /// <summary>
    /// One micro-batch <paramref name="x"/> (n, C, H, W) without gradient: its embeddings, written into
    /// <paramref name="target"/>, and (with <paramref name="reconstruct"/>) its squared reconstruction error.
    /// </summary>
    public double EmbedMicroBatch(Tensor x, Tensor target, bool reconstruct)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var z = Autoencoder.Encode(x);
        target.copy_(z);
        return reconstruct ? SquaredError(Autoencoder.Decode(z), x) : 0;
    }

    /// <summary>
    /// Σ (x̂ − x)², summed on the host in double precision in element order: torch's own sum splits the reduction by its
    /// intra-op thread count, so its last bits would differ between a worker with one thread and a process with two,
    /// and the evaluation's reconstruction error would not be the same bits on every world.
    /// </summary>
    private static double SquaredError(Tensor xHat, Tensor x)
    {
        using var squared = TorchScalars.Square(xHat - x).cpu();
        var values = squared.data<float>().ToArray();
        var sum = 0.0;
        foreach (var v in values) sum += v;
        return sum;
    }

    /// <summary>Inference: the micro-batches one after the other on the calling thread (the same bits as the engine's shard threads).</summary>
    public Tensor Embed(ReadOnlySpan<float> images, int count, out double squaredError)
    {
        var result = empty(new long[] { count, Som.Dim }, device: Device);
        var pixels = Shape.Pixels;
        squaredError = 0;
        for (int i = 0; i < MicroBatches.Count(count); i++)
        {
            var (start, n) = MicroBatches.Range(count, i);
            if (n == 0) continue;
            using var scope = NewDisposeScope();
            var x = tensor(images.Slice(start * pixels, n * pixels).ToArray(), new long[] { n, Shape.Channels, Shape.Height, Shape.Width }, device: Device);
            squaredError += EmbedMicroBatch(x, result.narrow(0, start, n), reconstruct: true);
        }
        return result;
    }

    public void Dispose()
    {
        Som.Dispose();
        Autoencoder.Dispose();
    }
}
