using System.Buffers.Binary;
using System.IO.Compression;

namespace Dnm.Core.Tests.Data;

/// <summary>Writes small synthetic IDX files, so the reader is tested without the real datasets.</summary>
internal static class Idx
{
    /// <summary>Images file bytes: magic 0x00000803, dims (count, rows, cols), then the pixels.</summary>
    public static byte[] Images(int count, int rows, int cols, Func<int, byte> pixel) =>
        Build(0x803, [count, rows, cols], Enumerable.Range(0, count * rows * cols).Select(pixel).ToArray());

    /// <summary>Labels file bytes: magic 0x00000801, dim (count), then the labels.</summary>
    public static byte[] Labels(params byte[] labels) => Build(0x801, [labels.Length], labels);

    public static byte[] Build(int magic, int[] dims, byte[] data)
    {
        var bytes = new byte[4 + 4 * dims.Length + data.Length];
        BinaryPrimitives.WriteInt32BigEndian(bytes, magic);
        for (int d = 0; d < dims.Length; d++)
            BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(4 + 4 * d), dims[d]);
        data.CopyTo(bytes, 4 + 4 * dims.Length);
        return bytes;
    }

    public static byte[] Gzip(byte[] data)
    {
        using var output = new MemoryStream();
        using (var gzip = new GZipStream(output, CompressionLevel.Fastest))
            gzip.Write(data);
        return output.ToArray();
    }

    public static string Write(string path, byte[] bytes)
    {
        System.IO.File.WriteAllBytes(path, bytes);
        return path;
    }
}
