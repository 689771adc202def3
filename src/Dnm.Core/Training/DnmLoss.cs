using TorchSharp;
using static TorchSharp.torch;

namespace Dnm.Core.Training;

/// <summary>The DNM clustering loss, as functions of their inputs (no state).</summary>
public static class DnmLoss
{
    /// <summary>Student-t kernel (1 + d_ij)^-1, unnormalised: q_ij = kernel_ij / Σ_j' kernel_ij'.</summary>
    public static Tensor SoftAssignment(Tensor squaredDistances)
    {
        var kernel = (squaredDistances + 1).reciprocal();
        return kernel / kernel.sum(1, keepdim: true);
    }

    /// <summary>
    /// DEC-style sharpened target p_ij = (q_ij²/f_j) / Σ_j' (q_ij'²/f_j'), where f_j = Σ_i q_ij is summed
    /// over the whole global batch (all workers), not the local shard.
    /// </summary>
    public static Tensor Target(Tensor q, Tensor globalSoftCounts)
    {
        var w = q.pow(2) / globalSoftCounts.clamp_min(1e-12).unsqueeze(0);
        return w / w.sum(1, keepdim: true);
    }

    /// <summary>The authors' variant: no 1/f_j term (and the caller lets the gradient flow through P).</summary>
    public static Tensor TargetWithoutFrequency(Tensor q)
    {
        var w = q.pow(2);
        return w / w.sum(1, keepdim: true);
    }

    /// <summary>Σ_i Σ_j p_ij log(p_ij / q_ij): a sum over the local samples (the caller divides by the global B).</summary>
    public static Tensor KlSum(Tensor p, Tensor q)
    {
        const double eps = 1e-12;
        return (p * ((p + eps).log() - (q + eps).log())).sum();
    }
}
