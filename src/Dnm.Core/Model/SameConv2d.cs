using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Dnm.Core.Model;

/// <summary>
/// A stride-1 convolution with 'same' padding (k odd, padding k/2): Conv2d's parameters (weight
/// out×in×k×k, bias out; same names, same initialisation), computed on the CPU by
/// <see cref="DirectConvolution"/> and elsewhere by torch.
/// </summary>
public sealed class SameConv2d : Module<Tensor, Tensor>
{
    private readonly Parameter weight;
    private readonly Parameter bias;
    private readonly long padding;

    public SameConv2d(long inChannels, long outChannels, long kernel) : base(nameof(SameConv2d))
    {
        if (kernel % 2 == 0) throw new ArgumentException($"'same' padding needs an odd kernel, got {kernel}", nameof(kernel));
        padding = kernel / 2;
        using (var init = Conv2d(inChannels, outChannels, kernel, padding: padding))
        using (no_grad())
        {
            weight = new Parameter(init.weight!.detach().clone());
            bias = new Parameter(init.bias!.detach().clone());
        }
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) => Apply(x, weight, bias, padding);

    /// <summary>conv2d(x, weight, bias) with 'same' padding, by the direct kernels where they apply.</summary>
    internal static Tensor Apply(Tensor x, Tensor weight, Tensor bias, long padding) =>
        SameConv2dFunction.Supports(x, weight)
            ? SameConv2dFunction.apply(x, weight, bias)
            : functional.conv2d(x, weight, bias, padding: [padding, padding]);

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
