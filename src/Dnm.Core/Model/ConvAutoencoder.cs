using Dnm.Core.Config;
using Dnm.Core.Data;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Dnm.Core.Model;

/// <summary>
/// The paper's convolutional autoencoder, written for one device.
/// Encoder E_θ: conv C→c1→c2→c3 (k×k, 'same' padding, ReLU) → flatten → dense → z.
/// Decoder D_φ: dense z → c3·H·W (ReLU) → transposed convs back to C channels → sigmoid.
/// Encode and Decode stay apart: the SOM works on z alone.
/// </summary>
public sealed class ConvAutoencoder : Autoencoder
{
    private readonly Sequential encoderConvs;
    private readonly Linear encoderDense;
    private readonly Linear decoderDense;
    private readonly Sequential decoderConvs;
    private readonly int lastChannels;

    public ConvAutoencoder(ImageShape shape, DnmConfig config) : base(nameof(ConvAutoencoder), shape, config)
    {
        var k = config.Kernel;
        var channels = config.Channels;
        lastChannels = channels[^1];
        StepBufferBytesPerSample = (long)channels.Prepend(shape.Channels).Max() * k * k * shape.Height * shape.Width * sizeof(float);

        var enc = new List<(string, Module<Tensor, Tensor>)>();
        var cin = shape.Channels;
        for (int i = 0; i < channels.Length; i++)
        {
            enc.Add(($"conv{i + 1}", new SameConv2d(cin, channels[i], k)));
            enc.Add(($"relu{i + 1}", ReLU()));
            cin = channels[i];
        }
        encoderConvs = Sequential(enc);
        var flat = (long)lastChannels * shape.Height * shape.Width;
        encoderDense = Linear(flat, config.Latent);

        decoderDense = Linear(config.Latent, flat);
        var dec = new List<(string, Module<Tensor, Tensor>)>();
        for (int i = channels.Length - 1; i >= 0; i--)
        {
            var cout = i == 0 ? shape.Channels : channels[i - 1];
            dec.Add(($"deconv{channels.Length - i}", new SameConvTranspose2d(channels[i], cout, k)));
            dec.Add(i == 0 ? ($"sigmoid", Sigmoid()) : ($"relu{channels.Length - i}", ReLU()));
        }
        decoderConvs = Sequential(dec);
        RegisterComponents();
    }

    /// <summary>slow_conv2d's im2col matrix: the widest C·k² × H·W floats.</summary>
    public override long StepBufferBytesPerSample { get; }

    public override IEnumerable<Parameter> EncoderParameters() => encoderConvs.parameters().Concat(encoderDense.parameters());

    protected override Tensor EncodeLinear(Tensor x) => encoderDense.forward(encoderConvs.forward(x).flatten(1));

    public override Tensor Decode(Tensor z)
    {
        var h = functional.relu(decoderDense.forward(z)).view(-1, lastChannels, Shape.Height, Shape.Width);
        return decoderConvs.forward(h);
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            encoderConvs.Dispose();
            encoderDense.Dispose();
            decoderDense.Dispose();
            decoderConvs.Dispose();
        }
        base.Dispose(disposing);
    }
}
