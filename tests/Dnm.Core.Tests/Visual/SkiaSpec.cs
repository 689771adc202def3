using SkiaSharp;

namespace Dnm.Core.Tests.Visual;

public class SkiaSpec
{
    [Fact]
    public void Native_skia_library_loads_and_round_trips_a_png()
    {
        // Touching SKBitmap loads libSkiaSharp.so; a missing or incompatible native asset throws here.
        using var bitmap = new SKBitmap(3, 2);
        bitmap.Erase(new SKColor(10, 200, 30));
        using var data = bitmap.Encode(SKEncodedImageFormat.Png, 100);

        using var back = SKBitmap.Decode(data);

        Assert.Equal((3, 2), (back.Width, back.Height));
        Assert.Equal(new SKColor(10, 200, 30), back.GetPixel(2, 1));
    }
}
