using Dnm.Core.Data;
using SkiaSharp;

namespace Dnm.Fuzz.Targets;

/// <summary>
/// The image decode path of folders, shards and `dnm serve` (<see cref="ImageDecoder.TryDecode(ReadOnlySpan{byte}, ImageShape, Span{byte}, long, out ImageHeader)"/>):
/// any bytes must come back as a <see cref="DecodeFailure"/>, never as an exception, and a header above the pixel
/// budget must be refused before decoding. Decoded to grayscale and to RGB.
/// </summary>
public sealed class ImageTarget : IFuzzTarget
{
    private static readonly ImageShape Gray = new(1, 8, 8);
    private static readonly ImageShape Rgb = new(3, 8, 8);

    public string Name => "image";

    public void Run(byte[] input)
    {
        ImageDecoder.TryDecode(input, Gray, new byte[Gray.Pixels], 1_000_000, out _);
        ImageDecoder.TryDecode(input, Rgb, new byte[Rgb.Pixels], 1_000_000, out _);
    }

    public IEnumerable<(string Name, byte[] Bytes)> Seeds()
    {
        foreach (var (name, format) in new[] { ("a.png", SKEncodedImageFormat.Png), ("a.jpg", SKEncodedImageFormat.Jpeg), ("a.webp", SKEncodedImageFormat.Webp) })
        {
            using var bitmap = new SKBitmap(5, 4, SKColorType.Rgba8888, SKAlphaType.Premul);
            for (int y = 0; y < 4; y++)
                for (int x = 0; x < 5; x++)
                    bitmap.SetPixel(x, y, new SKColor((byte)(40 * x), (byte)(60 * y), 128, 255));
            using var data = bitmap.Encode(format, 90);
            yield return (name, data.ToArray());
        }
    }
}
