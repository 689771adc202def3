using TorchSharp;

namespace Dnm.Core.Runtime;

/// <summary>
/// Scalars for torch calls in loops. TorchSharp turns a double passed where a <see cref="Scalar"/> is expected
/// (also through <c>tensor * 0.5</c>, <c>pow(2)</c>, <c>clamp_min(1.0)</c>, and the alpha of 1 behind <c>a + b</c> and
/// <c>add_(b)</c> between tensors) into a native scalar that only the
/// managed object's finalizer frees, and nothing keeps that object alive while the native call it went to
/// runs: a garbage collection in that window frees the scalar under libtorch ("Unknown scalar type", seen once
/// in SOM pre-training on full MNIST). Code that runs every step or iteration therefore takes its scalars from
/// here into a <c>using</c> variable: the <c>Dispose</c> at the end of the scope keeps each alive past its calls
/// and frees it at once.
/// </summary>
public static class TorchScalars
{
    public static Scalar Of(double value) => value.ToScalar();

    /// <summary>
    /// x², element-wise, as TorchSharp's <c>square()</c> computes it: that is <c>pow(2)</c> with a temporary scalar, the
    /// window above ("Unknown scalar type" from pow in a step's backward, once, in a loaded CI run). The same kernel and
    /// exponent, so the same bits.
    /// </summary>
    public static torch.Tensor Square(torch.Tensor x)
    {
        using var two = 2.ToScalar();
        return x.pow(two);
    }
}
