using Dnm.Core.Config;
using Dnm.Core.Data;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Dnm.Core.Model;

/// <summary>
/// A fully connected autoencoder, the one DEC and DPSOM use (784-500-500-2000-10 for MNIST).
/// Encoder E_θ: flatten → dense layers of <see cref="DnmConfig.Hidden"/> widths (ReLU) → dense → z.
/// Decoder D_φ: the mirror image, dense z → reversed widths (ReLU) → C·H·W → sigmoid.
/// </summary>
public sealed class MlpAutoencoder : Autoencoder
{
    private readonly Sequential encoder;
    private readonly Sequential decoder;

    public MlpAutoencoder(ImageShape shape, DnmConfig config) : base(nameof(MlpAutoencoder), shape, config)
    {
        long pixels = shape.Pixels;
        var widths = config.Hidden;
        var enc = new List<(string, Module<Tensor, Tensor>)>();
        var width = pixels;
        for (var i = 0; i < widths.Length; i++)
        {
            enc.Add(($"dense{i + 1}", Linear(width, widths[i])));
            enc.Add(($"relu{i + 1}", ReLU()));
            width = widths[i];
        }
        enc.Add(($"dense{widths.Length + 1}", Linear(width, config.Latent)));
        encoder = Sequential(enc);

        var dec = new List<(string, Module<Tensor, Tensor>)>();
        width = config.Latent;
        for (var i = widths.Length - 1; i >= 0; i--)
        {
            dec.Add(($"dense{widths.Length - i}", Linear(width, widths[i])));
            dec.Add(($"relu{widths.Length - i}", ReLU()));
            width = widths[i];
        }
        dec.Add(($"dense{widths.Length + 1}", Linear(width, pixels)));
        dec.Add(("sigmoid", Sigmoid()));
        decoder = Sequential(dec);
        StepBufferBytesPerSample = Math.Max(pixels, widths.Max()) * sizeof(float);
        RegisterComponents();
    }

    /// <summary>The widest layer's activations.</summary>
    public override long StepBufferBytesPerSample { get; }

    public override IEnumerable<Parameter> EncoderParameters() => encoder.parameters();

    protected override Tensor EncodeLinear(Tensor x) => encoder.forward(x.flatten(1));

    public override Tensor Decode(Tensor z) => decoder.forward(z).view(-1, Shape.Channels, Shape.Height, Shape.Width);

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            encoder.Dispose();
            decoder.Dispose();
        }
        base.Dispose(disposing);
    }
}
