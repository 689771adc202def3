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

    public AdamOptimizer(IEnumerable<Parameter> parameters, double learningRate, double beta1 = 0.9, double beta2 = 0.999, double eps = 1e-8)
    {
        this.parameters = parameters.ToArray();
        LearningRate = learningRate;
        this.beta1 = beta1;
        this.beta2 = beta2;
        this.eps = eps;
        m = this.parameters.Select(p => zeros_like(p).DetachFromDisposeScope()).ToArray();
        v = this.parameters.Select(p => zeros_like(p).DetachFromDisposeScope()).ToArray();
    }

    public double LearningRate { get; }

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
        var stepSize = LearningRate / bc1;
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

    public void Dispose()
    {
        foreach (var t in m) t.Dispose();
        foreach (var t in v) t.Dispose();
    }
}
