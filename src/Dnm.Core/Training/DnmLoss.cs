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
            var logKernel = (squaredDistances / degreesOfFreedom).log1p() * (-(degreesOfFreedom + 1) / 2);
            return logKernel.softmax(1);
        }
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
