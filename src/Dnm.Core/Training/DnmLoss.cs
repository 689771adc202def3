using Dnm.Core.Config;
using Dnm.Core.Runtime;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Dnm.Core.Training;

/// <summary>
/// The whole DNM objective, as functions of their inputs (no state):
/// <c>loss = KL(P‖Q) + γ‖X − X̂‖² + λ‖z − ẑ‖² + β‖θ‖²</c> (+ the supervised term of <see cref="AddSupervised"/>), the first three summed over a micro-batch and divided by the
/// global B (<see cref="MicroBatchLoss"/>: the micro-batches' gradients then sum to the batch's), the L2 term once per
/// step on the reduced gradient (<see cref="AddL2Gradient"/>, or fused in <see cref="AdamOptimizer.StepOnHost"/>), and the
/// reported parts from the reduced sums (<see cref="StepLossOf"/>).
/// </summary>
public static class DnmLoss
{
    /// <summary>
    /// One micro-batch's part of the loss, already divided by the global batch <paramref name="globalBatch"/>, and its
    /// sums: the squared reconstruction error (summed over pixels, as the loss is written: a per-pixel mean would weigh
    /// reconstruction 1/784 as much on MNIST), the KL sum and the smoothing sum (zero tensors where a term is off).
    /// <paramref name="q"/> is null in an autoencoder step; <paramref name="targets"/> null while smoothing is off.
    /// </summary>
    public static (Tensor Loss, Tensor SquaredError, Tensor KlSum, Tensor SmoothingSum) MicroBatchLoss(DnmConfig config, Tensor x, Tensor xHat,
        Tensor z, Tensor? q, Tensor globalSoftCounts, Tensor? targets, int globalBatch)
    {
        // Tensor + passes a temporary alpha scalar that a garbage collection can free under the native call
        // (TorchScalars): every sum here names its scalar.
        using var one = TorchScalars.Of(1.0);
        var squaredError = TorchScalars.Square(xHat - x).sum();
        using var gammaOverBatch = TorchScalars.Of(config.Gamma / globalBatch);
        using var batch = TorchScalars.Of(globalBatch);
        var loss = squaredError.mul(gammaOverBatch);
        var klSum = zeros(1, device: x.device);
        var smoothingSum = zeros(1, device: x.device);
        if (q is not null)
        {
            var p = config.Target == TargetDistribution.Authors
                ? TargetWithoutFrequency(q)
                : Target(q.detach(), globalSoftCounts.to(x.device));
            klSum = KlSum(p, q);
            loss = loss.add(klSum.div(batch), one);
            if (targets is not null && config.SmoothWeight > 0)
            {
                using var lambdaOverBatch = TorchScalars.Of(config.SmoothWeight / globalBatch);
                smoothingSum = TorchScalars.Square(z - targets).sum();
                loss = loss.add(smoothingSum.mul(lambdaOverBatch), one);
            }
        }
        return (loss, squaredError, klSum, smoothingSum);
    }

    /// <summary>
    /// The supervised term of semi-supervised training for one micro-batch: Σ over its labelled samples of
    /// −log π_i,y_i, where π_i = Σ_j q_ij P(· | j) is the soft assignment's class prediction and P the nodes' learned class
    /// distributions (<see cref="NodeClasses"/>, fixed within the step). <paramref name="labels"/> (long, one a sample) is
    /// −1 for an unlabelled sample, which adds nothing. Returns the loss with the term added (weight/B times the sum) and the sum.
    /// </summary>
    public static (Tensor Loss, Tensor SupervisedSum) AddSupervised(DnmConfig config, Tensor loss, Tensor q, Tensor classProbabilities, Tensor labels,
        int globalBatch)
    {
        using var zero = TorchScalars.Of(0);
        using var eps = TorchScalars.Of(1e-12);
        using var one = TorchScalars.Of(1.0);
        var picked = labels.ge(zero).nonzero().squeeze(1);
        if (picked.numel() == 0) return (loss, zeros(1, device: q.device));
        var prediction = q.index_select(0, picked).mm(classProbabilities.to(q.device));
        var truth = prediction.gather(1, labels.index_select(0, picked).unsqueeze(1));
        var sum = truth.add(eps, one).log_().sum().neg();
        using var weightOverBatch = TorchScalars.Of(config.LabelWeight / globalBatch);
        return (config.LabelWeight > 0 ? loss.add(sum.mul(weightOverBatch), one) : loss, sum);
    }

    /// <summary>
    /// The L2 rule, once per step: adds 2βθ to the reduced gradient of every encoder parameter (no micro-batch holds it)
    /// and returns ‖θ‖² before the update, for the reported L2 part.
    /// </summary>
    public static double AddL2Gradient(Tensor[] grads, IReadOnlyList<Parameter> parameters, IReadOnlyList<bool> isEncoder, double beta)
    {
        double l2 = 0;
        if (beta <= 0) return l2;
        using var _ = no_grad();
        using var twoBeta = TorchScalars.Of(2 * beta);
        for (int i = 0; i < parameters.Count; i++)
        {
            if (!isEncoder[i]) continue;
            grads[i] = grads[i] + parameters[i].mul(twoBeta);
            l2 += TorchScalars.Square(parameters[i]).sum().item<float>();
        }
        return l2;
    }

    /// <summary>The step's loss parts as means over its B samples, from the reduced sums and ‖θ‖².</summary>
    public static StepLoss StepLossOf(DnmConfig config, StepLayout layout, ReadOnlySpan<float> reduced, int globalBatch, StepMode mode, double l2, int pixels)
    {
        var b = (double)globalBatch;
        var kl = reduced[layout.KlSumIndex] / b;
        // recon is reported per pixel (comparable with the evaluation's recon_mse); the loss sums the pixels.
        var recon = reduced[layout.SquaredErrorSumIndex] / (b * pixels);
        double? smoothing = mode == StepMode.Joint && config.SmoothWeight > 0 ? reduced[layout.SmoothingSumIndex] / b : null;
        double? supervised = mode == StepMode.Joint && layout.Classes > 0 ? reduced[layout.SupervisedSumIndex] / Math.Max(1.0, reduced[layout.LabelledCountIndex]) : null;
        var supervisedPart = layout.Classes > 0 ? config.LabelWeight * reduced[layout.SupervisedSumIndex] / b : 0;
        var total = kl + config.Gamma * pixels * recon + config.Beta * l2 + config.SmoothWeight * (smoothing ?? 0) + supervisedPart;
        return new StepLoss(kl, recon, config.Beta * l2, total, (int)reduced[layout.SampleCountIndex], smoothing, Supervised: supervised);
    }

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
        var kernel = squaredDistances.add(one, one).reciprocal_();
        return kernel / kernel.sum(1, keepdim: true);
    }

    /// <summary>
    /// DEC-style sharpened target p_ij = (q_ij²/f_j) / Σ_j' (q_ij'²/f_j'), where f_j = Σ_i q_ij is summed
    /// over the whole global batch (all workers), not the local shard.
    /// </summary>
    public static Tensor Target(Tensor q, Tensor globalSoftCounts)
    {
        using var floor = TorchScalars.Of(1e-12);
        var w = TorchScalars.Square(q) / globalSoftCounts.clamp_min(floor).unsqueeze(0);
        return w / w.sum(1, keepdim: true);
    }

    /// <summary>The authors' variant: no 1/f_j term (and the caller lets the gradient flow through P).</summary>
    public static Tensor TargetWithoutFrequency(Tensor q)
    {
        var w = TorchScalars.Square(q);
        return w / w.sum(1, keepdim: true);
    }

    /// <summary>Σ_i Σ_j p_ij log(p_ij / q_ij): a sum over the local samples (the caller divides by the global B).</summary>
    public static Tensor KlSum(Tensor p, Tensor q)
    {
        // A named alpha: add(scalar) alone passes a temporary alpha of 1 that a garbage collection can free under the
        // native call (TorchScalars; "Expected false to be true" in Scalar::toFloat here, once, in a loaded test run).
        using var eps = TorchScalars.Of(1e-12);
        using var one = TorchScalars.Of(1.0);
        return (p * (p.add(eps, one).log_() - q.add(eps, one).log_())).sum();
    }
}
