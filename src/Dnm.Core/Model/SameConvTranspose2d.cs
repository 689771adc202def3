using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Dnm.Core.Model;

/// <summary>
/// A stride-1 transposed convolution with 'same' padding (k odd, padding k/2), computed as the
/// ordinary convolution it equals: conv_transpose2d(x, W, p) = conv2d(x, flip(W)ᵀ, k−1−p), where
/// flip(W)ᵀ swaps W's in/out channel axes and reverses both spatial axes; with p = k/2 both paddings
/// are k/2. The sums are the same, only their order differs (float rounding).
/// Why: without oneDNN, libtorch's slow_conv_transpose2d loops over the batch one sample at a time
/// with a small multi-threaded GEMM each (thousands of thread hand-offs per step) and was 3–5×
/// slower than its slow_conv2d, which works on the whole batch at once.
/// Parameters are named and shaped as ConvTranspose2d's (weight: in×out×k×k, bias: out) and start
/// from ConvTranspose2d's initialisation, so checkpoints and seeds mean what they meant before.
/// </summary>
public sealed class SameConvTranspose2d : Module<Tensor, Tensor>
{
    private readonly Parameter weight;
    private readonly Parameter bias;
    private readonly long padding;

    public SameConvTranspose2d(long inChannels, long outChannels, long kernel) : base(nameof(SameConvTranspose2d))
    {
        if (kernel % 2 == 0) throw new ArgumentException($"'same' padding needs an odd kernel, got {kernel}", nameof(kernel));
        padding = kernel / 2;
        using (var init = ConvTranspose2d(inChannels, outChannels, kernel, padding: padding))
        using (no_grad())
        {
            weight = new Parameter(init.weight!.detach().clone());
            bias = new Parameter(init.bias!.detach().clone());
        }
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) => SameConv2d.Apply(x, weight.flip(2, 3).transpose(0, 1), bias, padding);

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            weight.Dispose();
            bias.Dispose();
        }
        base.Dispose(disposing);
    }
}
