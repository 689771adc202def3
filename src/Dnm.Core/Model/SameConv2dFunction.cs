using Dnm.Core.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace Dnm.Core.Model;

/// <summary>
/// The autograd node of a stride-1 'same' convolution computed by <see cref="DirectConvolution"/>:
/// apply(x, weight, bias) with x n×cin×h×w, weight cout×cin×k×k and bias cout, all float32 on the CPU.
/// The node saves x and the weight (as torch's convolution does) and runs on whichever thread
/// differentiates the graph: a step's shard thread.
/// </summary>
internal sealed class SameConv2dFunction : autograd.SingleTensorFunction<SameConv2dFunction>
{
    private const string InputNeedsGrad = "input-needs-grad";

    public override string Name => nameof(SameConv2dFunction);

    public static bool Supports(Tensor x, Tensor weight) =>
        x.device_type == DeviceType.CPU && x.dtype == ScalarType.Float32 && weight.dtype == ScalarType.Float32
        && x.dim() == 4 && weight.dim() == 4 && weight.shape[2] == weight.shape[3] && weight.shape[2] % 2 == 1;

    public override Tensor forward(autograd.AutogradContext ctx, params object[] vars)
    {
        var x = ((Tensor)vars[0]).contiguous();
        var weight = ((Tensor)vars[1]).contiguous();
        var bias = ((Tensor)vars[2]).contiguous();
        ctx.save_for_backward([x, weight]);
        // The first layer's input is data: its gradient is never needed, and it costs a third of the layer.
        ctx.save_data(InputNeedsGrad, ((Tensor)vars[0]).requires_grad);
        var g = Geometry(x, weight);
        var y = empty(new long[] { g.N, g.Cout, g.H, g.W });
        DirectConvolution.Forward(g, HostTensor.Floats(x), HostTensor.Floats(weight), HostTensor.Floats(bias), HostTensor.Floats(y));
        return y;
    }

    public override List<Tensor> backward(autograd.AutogradContext ctx, Tensor grad_output)
    {
        var saved = ctx.get_saved_variables();
        var (x, weight) = (saved[0], saved[1]);
        var g = Geometry(x, weight);
        var dy = grad_output.contiguous();
        Tensor? dx = null;
        if (ctx.get_data(InputNeedsGrad) is true)
        {
            dx = empty_like(x);
            DirectConvolution.GradInput(g, HostTensor.Floats(dy), HostTensor.Floats(weight), HostTensor.Floats(dx));
        }
        var dw = empty_like(weight);
        var db = empty(new long[] { g.Cout });
        DirectConvolution.GradWeight(g, HostTensor.Floats(x), HostTensor.Floats(dy), HostTensor.Floats(dw), HostTensor.Floats(db));
        return [dx!, dw, db];
    }

    private static DirectConvolution.Geometry Geometry(Tensor x, Tensor weight)
    {
        if (x.shape[1] != weight.shape[1])
            throw new ArgumentException($"input has {x.shape[1]} channels but the kernel expects {weight.shape[1]}");
        return new((int)x.shape[0], (int)x.shape[1], (int)weight.shape[0], (int)x.shape[2], (int)x.shape[3], (int)weight.shape[2]);
    }
}
