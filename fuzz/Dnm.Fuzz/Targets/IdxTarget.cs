using System.Buffers.Binary;
using System.IO.Compression;
using Dnm.Core.Data;

namespace Dnm.Fuzz.Targets;

/// <summary>The IDX images reader (MNIST's format), plain or gzip-compressed.</summary>
public sealed class IdxTarget : IFuzzTarget
{
    public string Name => "idx";

    public void Run(byte[] input)
    {
        try
        {
            using var data = IdxDataset.Open(InputFile.Write(input));
            Span<float> image = stackalloc float[Math.Min(data.Shape.Pixels, 4096)];
            if (data.Count > 0 && data.Shape.Pixels <= image.Length) data.CopyImage(data.Count - 1, image[..data.Shape.Pixels]);
        }
        catch (DataException)
        {
        }
    }

    public IEnumerable<(string Name, byte[] Bytes)> Seeds()
    {
        var plain = Images(3, 4, 5);
        yield return ("three-4x5.idx", plain);
        yield return ("one-2x2.idx", Images(1, 2, 2));
        using var gz = new MemoryStream();
        using (var zip = new GZipStream(gz, CompressionLevel.SmallestSize)) zip.Write(plain);
        yield return ("three-4x5.idx.gz", gz.ToArray());
    }

    private static byte[] Images(int count, int rows, int cols)
    {
        var bytes = new byte[16 + count * rows * cols];
        BinaryPrimitives.WriteInt32BigEndian(bytes, 0x00000803);
        BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(4), count);
        BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(8), rows);
        BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(12), cols);
        for (var i = 16; i < bytes.Length; i++) bytes[i] = (byte)(i * 37);
        return bytes;
    }
}
