using TorchSharp;
using static TorchSharp.torch;

namespace Dnm.Core.Runtime;

/// <summary>
/// A start-up check of the CPU convolution kernels: a tiny conv and transposed conv, forward and
/// backward, in float32 against float64. oneDNN only serves float32, so float64 is the reference.
/// On some VMs (its CPU reports no cache sizes) oneDNN 3.x in libtorch 2.10 returns wrong
/// gradients or NaN; this is how we notice.
/// </summary>
public static class NumericsSelfCheck
{
    public sealed record Result(bool Passed, double WorstRelativeError, string Detail);

    public static Result Run(Device device)
    {
        using var scope = NewDisposeScope();
        var gen = new Generator(12345, device: CPU);
        // Scalars held for the native calls (TorchScalars explains why an implicit one is not safe).
        using var half = TorchScalars.Of(0.5);
        var x64 = rand(new long[] { 4, 3, 16, 16 }, dtype: float64, generator: gen);
        var wConv = rand(new long[] { 6, 3, 5, 5 }, dtype: float64, generator: gen).sub_(half);
        var wConvT = rand(new long[] { 6, 2, 5, 5 }, dtype: float64, generator: gen).sub_(half);
        var up = rand(new long[] { 4, 2, 16, 16 }, dtype: float64, generator: gen);

        var (outRef, gradsRef) = Forward(x64, wConv, wConvT, up, device);
        var (out32, grads32) = Forward(x64.to(float32), wConv.to(float32), wConvT.to(float32), up.to(float32), device);

        double worst = RelErr(out32, outRef);
        string where = "forward";
        for (int i = 0; i < gradsRef.Length; i++)
        {
            var e = RelErr(grads32[i], gradsRef[i]);
            if (e > worst || double.IsNaN(e)) { worst = e; where = $"backward (gradient {i})"; }
        }
        // float32 accumulation over ~150 terms gives ~1e-6; 1e-3 leaves room but catches real faults.
        var passed = !double.IsNaN(worst) && worst < 1e-3;
        return new Result(passed, worst, $"worst relative error {worst:E2} in the {where}");
    }

    private static (Tensor Out, Tensor[] Grads) Forward(Tensor x, Tensor wConv, Tensor wConvT, Tensor up, Device device)
    {
        // detach(): each call must own fresh leaves, or the second call's inputs become graph nodes.
        x = x.detach().to(device).requires_grad_(true);
        wConv = wConv.detach().to(device).requires_grad_(true);
        wConvT = wConvT.detach().to(device).requires_grad_(true);
        var h = nn.functional.conv2d(x, wConv, padding: [2, 2]).relu();
        var y = nn.functional.conv_transpose2d(h, wConvT, padding: [2, 2]);
        var loss = (y * up.to(device)).sum() + TorchScalars.Square(y).mean();
        loss.backward();
        return (y.detach().to(float64).cpu(), [x.grad!.to(float64).cpu(), wConv.grad!.to(float64).cpu(), wConvT.grad!.to(float64).cpu()]);
    }

    private static double RelErr(Tensor a, Tensor reference)
    {
        var diff = (a - reference).abs().max().item<double>();
        var scale = reference.abs().max().item<double>();
        return diff / Math.Max(scale, 1e-12);
    }
}
