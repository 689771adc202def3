using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using Dnm.Core.Runtime;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Dnm.Core.Training;

/// <summary>
/// Adam (Kingma and Ba), the same arithmetic as torch.optim.Adam without weight decay or amsgrad.
/// It is written out, not borrowed, so that its state (m, v, t) is plain tensors that a checkpoint
/// saves, a joining worker receives, and the replica checksum covers.
/// </summary>
public sealed class AdamOptimizer : IDisposable
{
    private readonly Parameter[] parameters;
    private readonly Tensor[] m;
    private readonly Tensor[] v;
    private readonly double beta1, beta2, eps;

    public AdamOptimizer(IEnumerable<Parameter> parameters, double learningRate, int warmupSteps = 0, double beta1 = 0.9, double beta2 = 0.999,
        double eps = 1e-8)
    {
        this.parameters = parameters.ToArray();
        LearningRate = learningRate;
        WarmupSteps = warmupSteps;
        this.beta1 = beta1;
        this.beta2 = beta2;
        this.eps = eps;
        m = this.parameters.Select(p => zeros_like(p).DetachFromDisposeScope()).ToArray();
        v = this.parameters.Select(p => zeros_like(p).DetachFromDisposeScope()).ToArray();
    }

    public double LearningRate { get; }

    /// <summary>The learning rate rises linearly over this many first updates (0: none); see <see cref="RateAt"/>.</summary>
    public int WarmupSteps { get; }

    /// <summary>
    /// The learning rate of update <paramref name="t"/> (1-based): <see cref="LearningRate"/>·min(1, t/<see cref="WarmupSteps"/>).
    /// A function of t alone, which a checkpoint and every replica share.
    /// </summary>
    public double RateAt(long t) => WarmupSteps > 0 && t < WarmupSteps ? LearningRate * t / WarmupSteps : LearningRate;

    /// <summary>Number of updates applied so far (t in the paper).</summary>
    public long Steps { get; set; }

    public IReadOnlyList<Tensor> FirstMoments => m;
    public IReadOnlyList<Tensor> SecondMoments => v;

    /// <summary>One update from the gradients in <paramref name="grads"/> (one per parameter, same order).</summary>
    public void Step(IReadOnlyList<Tensor> grads)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        Steps++;
        var bc1 = 1 - Math.Pow(beta1, Steps);
        var bc2 = 1 - Math.Pow(beta2, Steps);
        var stepSize = RateAt(Steps) / bc1;
        var bc2Sqrt = Math.Sqrt(bc2);
        using var b1 = TorchScalars.Of(beta1);
        using var b2 = TorchScalars.Of(beta2);
        using var oneMinusB1 = TorchScalars.Of(1 - beta1);
        using var oneMinusB2 = TorchScalars.Of(1 - beta2);
        using var sqrtBc2 = TorchScalars.Of(bc2Sqrt);
        using var epsilon = TorchScalars.Of(eps);
        using var minusStep = TorchScalars.Of(-stepSize);
        for (int i = 0; i < parameters.Length; i++)
        {
            var g = grads[i];
            m[i].mul_(b1).add_(g, alpha: oneMinusB1);
            v[i].mul_(b2).addcmul_(g, g, value: oneMinusB2);
            var denom = v[i].sqrt().div_(sqrtBc2).add_(epsilon);
            parameters[i].addcdiv_(m[i], denom, value: minusStep);
        }
    }

    /// <summary>Elements per work item of <see cref="StepOnHost"/>: the same items whatever the thread count.</summary>
    internal const int HostChunk = 1 << 15;

    /// <summary>
    /// One update on the CPU, fused: for every element one pass that reads the gradient (the first parameters' worth of
    /// <paramref name="flatGradients"/>, in parameter order), adds the L2 gradient 2βθ where <paramref name="decay"/> says,
    /// and updates m, v and θ, instead of torch's seven passes and temporaries over every tensor (for the fully
    /// connected model's 3.3 M parameters that was 14.5 ms of a 60 ms step). Work items are fixed chunks of
    /// <see cref="HostChunk"/> elements, run by <paramref name="parallelFor"/>(items, body); every element's arithmetic is
    /// its own, so the result is the same bits for any thread count. Returns Σθ² of the decayed parameters before the
    /// update (for the reported L2 part), summed in item order.
    /// </summary>
    public unsafe double StepOnHost(Tensor flatGradients, IReadOnlyList<bool> decay, double beta, Action<int, Action<int>> parallelFor)
    {
        var floats = Runtime.HostTensor.Floats(flatGradients);
        fixed (float* g = floats)
            return StepOnHost(g, floats.Length, decay, beta, parallelFor);
    }

    /// <summary>
    /// <see cref="StepOnHost(Tensor, IReadOnlyList{bool}, double, Action{int, Action{int}})"/> reading the gradients where the reduced
    /// statistics lie (pinned by the caller for the call), without copying them into a tensor first: for the fully connected model
    /// that copy was 13 MB a step on every replica.
    /// </summary>
    internal unsafe double StepOnHost(float* flatGradients, int length, IReadOnlyList<bool> decay, double beta, Action<int, Action<int>> parallelFor)
    {
        var items = new List<(int Parameter, int Start, int Length, long Offset)>();
        long offset = 0;
        for (var i = 0; i < parameters.Length; i++)
        {
            var n = (int)parameters[i].numel();
            for (var start = 0; start < n; start += HostChunk) items.Add((i, start, Math.Min(HostChunk, n - start), offset + start));
            offset += n;
        }
        if (length < offset)
            throw new ArgumentException($"{length} gradients for {offset} parameters", nameof(length));
        var gradients = (nint)flatGradients;
        Steps++;
        var bc1 = 1 - Math.Pow(beta1, Steps);
        var bc2 = 1 - Math.Pow(beta2, Steps);
        var b1 = (float)beta1;
        var b2 = (float)beta2;
        var oneMinusB1 = (float)(1 - beta1);
        var oneMinusB2 = (float)(1 - beta2);
        var sqrtBc2 = (float)Math.Sqrt(bc2);
        var epsilon = (float)eps;
        var stepSize = (float)(RateAt(Steps) / bc1);
        var twoBeta = (float)(2 * beta);
        var squares = new double[items.Count];
        parallelFor(items.Count, k =>
        {
            var (i, start, length, at) = items[k];
            var g = new ReadOnlySpan<float>((float*)gradients + at, length);
            var p = Runtime.HostTensor.Floats(parameters[i]).Slice(start, length);
            var mi = Runtime.HostTensor.Floats(m[i]).Slice(start, length);
            var vi = Runtime.HostTensor.Floats(v[i]).Slice(start, length);
            var l2 = decay[i] && beta > 0;
            squares[k] = l2 ? SumOfSquares(p) : 0;
            Update(g, p, mi, vi, l2 ? twoBeta : 0f, b1, oneMinusB1, b2, oneMinusB2, sqrtBc2, epsilon, stepSize);
        });
        double total = 0;
        foreach (var x in squares) total += x;
        return total;
    }

    /// <summary>
    /// Σx² in double, element j into accumulator j mod 8 (in element order), the eight then summed as
    /// ((a0+a1)+(a2+a3))+((a4+a5)+(a6+a7)) and the last Length mod 8 elements added one by one. One running sum was a
    /// chain of dependent adds, ~1 ms a step for the fully connected model's 1.7 M encoder weights on every replica; eight are
    /// ~6x faster. The order is fixed by the definition, not by the vector width: <see cref="Vector128"/>, accelerated on x64
    /// and ARM64 alike, gives the same bits as <see cref="SumOfSquaresScalar"/>.
    /// </summary>
    internal static double SumOfSquares(ReadOnlySpan<float> x)
    {
        Vector128<double> a01 = default, a23 = default, a45 = default, a67 = default;
        var groups = x.Length / 8;
        ref var start = ref MemoryMarshal.GetReference(x);
        for (var g = 0; g < groups; g++)
        {
            var (w01, w23) = Vector128.Widen(Vector128.LoadUnsafe(ref start, (nuint)(8 * g)));
            var (w45, w67) = Vector128.Widen(Vector128.LoadUnsafe(ref start, (nuint)(8 * g + 4)));
            a01 += w01 * w01;
            a23 += w23 * w23;
            a45 += w45 * w45;
            a67 += w67 * w67;
        }
        var sum = ((a01.GetElement(0) + a01.GetElement(1)) + (a23.GetElement(0) + a23.GetElement(1)))
                  + ((a45.GetElement(0) + a45.GetElement(1)) + (a67.GetElement(0) + a67.GetElement(1)));
        for (var j = 8 * groups; j < x.Length; j++) sum += (double)x[j] * x[j];
        return sum;
    }

    /// <summary><see cref="SumOfSquares"/> written out element by element: its definition, for the specs.</summary>
    internal static double SumOfSquaresScalar(ReadOnlySpan<float> x)
    {
        Span<double> a = stackalloc double[8];
        var groups = x.Length / 8;
        for (var j = 0; j < 8 * groups; j++) a[j % 8] += (double)x[j] * x[j];
        var sum = ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
        for (var j = 8 * groups; j < x.Length; j++) sum += (double)x[j] * x[j];
        return sum;
    }

    private static void Update(ReadOnlySpan<float> g, Span<float> p, Span<float> m, Span<float> v, float twoBeta, float b1, float oneMinusB1,
        float b2, float oneMinusB2, float sqrtBc2, float epsilon, float stepSize)
    {
        var lanes = System.Numerics.Vector<float>.Count;
        var i = 0;
        if (System.Numerics.Vector.IsHardwareAccelerated)
        {
            var vb1 = new System.Numerics.Vector<float>(b1);
            var v1b1 = new System.Numerics.Vector<float>(oneMinusB1);
            var vb2 = new System.Numerics.Vector<float>(b2);
            var v1b2 = new System.Numerics.Vector<float>(oneMinusB2);
            var vsq = new System.Numerics.Vector<float>(sqrtBc2);
            var veps = new System.Numerics.Vector<float>(epsilon);
            var vstep = new System.Numerics.Vector<float>(stepSize);
            var vdecay = new System.Numerics.Vector<float>(twoBeta);
            for (; i <= g.Length - lanes; i += lanes)
            {
                var pv = new System.Numerics.Vector<float>(p[i..]);
                var gv = new System.Numerics.Vector<float>(g[i..]) + pv * vdecay;
                var mv = new System.Numerics.Vector<float>(m[i..]) * vb1 + gv * v1b1;
                var vv = new System.Numerics.Vector<float>(v[i..]) * vb2 + gv * gv * v1b2;
                var denom = System.Numerics.Vector.SquareRoot(vv) / vsq + veps;
                (pv - vstep * mv / denom).CopyTo(p[i..]);
                mv.CopyTo(m[i..]);
                vv.CopyTo(v[i..]);
            }
        }
        // The tail in scalar code with the same operations in the same order (IEEE: the same bits as the lanes).
        for (; i < g.Length; i++)
        {
            var gi = g[i] + p[i] * twoBeta;
            var mi = m[i] * b1 + gi * oneMinusB1;
            var vi = v[i] * b2 + gi * gi * oneMinusB2;
            var denom = MathF.Sqrt(vi) / sqrtBc2 + epsilon;
            p[i] -= stepSize * mi / denom;
            m[i] = mi;
            v[i] = vi;
        }
    }

    public void Dispose()
    {
        foreach (var t in m) t.Dispose();
        foreach (var t in v) t.Dispose();
    }
}
