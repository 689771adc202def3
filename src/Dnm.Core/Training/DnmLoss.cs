using Dnm.Core.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace Dnm.Core.Training;

/// <summary>The DNM clustering loss, as functions of their inputs (no state).</summary>
public static class DnmLoss
{
    /// <summary>
    /// Student-t soft assignment with <paramref name="degreesOfFreedom"/> ν: q_ij = k_ij / Σ_j' k_ij' with
    /// k_ij = (1 + d_ij/ν)^-(ν+1)/2. ν = 1 (the paper's and DEC's) is (1 + d_ij)^-1; a larger ν makes the
    /// kernel lighter-tailed (closer to a Gaussian), so q is sharper where latent distances are large.
    /// </summary>
    public static Tensor SoftAssignment(Tensor squaredDistances, double degreesOfFreedom = 1)
    {
        if (degreesOfFreedom != 1)
        {
            // In log space: (1 + d/ν)^-(ν+1)/2 underflows float32 for large ν and d (101^-50.5 at ν = 100,
            // d = 10⁴), and 0/0 would make q NaN; the softmax of its log is the same q, computed stably.
            using var dof = TorchScalars.Of(degreesOfFreedom);
            using var exponent = TorchScalars.Of(-(degreesOfFreedom + 1) / 2);
            var logKernel = squaredDistances.div(dof).log1p_().mul_(exponent);
            return logKernel.softmax(1);
        }
        using var one = TorchScalars.Of(1.0);
        var kernel = squaredDistances.add(one).reciprocal_();
        return kernel / kernel.sum(1, keepdim: true);
    }

    /// <summary>
    /// DEC-style sharpened target p_ij = (q_ij²/f_j) / Σ_j' (q_ij'²/f_j'), where f_j = Σ_i q_ij is summed
    /// over the whole global batch (all workers), not the local shard.
    /// </summary>
    public static Tensor Target(Tensor q, Tensor globalSoftCounts)
    {
        using var floor = TorchScalars.Of(1e-12);
        var w = q.square() / globalSoftCounts.clamp_min(floor).unsqueeze(0);
        return w / w.sum(1, keepdim: true);
    }

    /// <summary>The authors' variant: no 1/f_j term (and the caller lets the gradient flow through P).</summary>
    public static Tensor TargetWithoutFrequency(Tensor q)
    {
        var w = q.square();
        return w / w.sum(1, keepdim: true);
    }

    /// <summary>Σ_i Σ_j p_ij log(p_ij / q_ij): a sum over the local samples (the caller divides by the global B).</summary>
    public static Tensor KlSum(Tensor p, Tensor q)
    {
        using var eps = TorchScalars.Of(1e-12);
        return (p * (p.add(eps).log_() - q.add(eps).log_())).sum();
    }
}
