using System.Buffers.Binary;
using System.IO.Compression;

namespace Dnm.Core.Data;

/// <summary>
/// Reads unsigned-byte IDX files (the MNIST format: http://yann.lecun.com/exdb/mnist/) and checks them
/// strictly, because a truncated download otherwise shows up much later as a silently wrong model.
/// Gzip-compressed files are recognised by their first bytes, whatever their name.
/// </summary>
internal static class IdxFile
{
    public const int ImagesMagic = 0x00000803;
    public const int LabelsMagic = 0x00000801;
    private const byte UnsignedByteType = 0x08;
    private const int MaxSide = 1 << 16;

    /// <summary>The item count in the header, the dimensions of what was kept, and the kept data.</summary>
    public sealed record Content(int TotalCount, int[] Dims, byte[] Data)
    {
        public int Count => Dims[0];
    }

    /// <summary>
    /// Reads an IDX file whose magic must be <paramref name="magic"/>; keeps the data of the first
    /// <paramref name="keepItems"/> items (all when null) but validates the length of the whole file.
    /// </summary>
    public static Content Read(string path, int magic, int? keepItems, string fix)
    {
        FileStream file;
        try
        {
            file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new DataException($"{path} cannot be read: {e.Message.TrimEnd('.')}. {fix}", e);
        }

        using (file)
        {
            bool gzip = file.Length >= 2 && file.ReadByte() == 0x1F && file.ReadByte() == 0x8B;
            file.Position = 0;
            using Stream stream = gzip ? new GZipStream(file, CompressionMode.Decompress) : file;
            try
            {
                return Read(path, stream, gzip ? null : file.Length, magic, keepItems, fix);
            }
            catch (InvalidDataException e)
            {
                throw new DataException($"{path} is a corrupt gzip file: {e.Message.TrimEnd('.')}. {fix}", e);
            }
        }
    }

    private static Content Read(string path, Stream stream, long? fileLength, int magic, int? keepItems, string fix)
    {
        int rank = magic & 0xFF;
        string what = magic == ImagesMagic ? "images" : "labels";
        Span<byte> header = stackalloc byte[4 + 4 * 3];
        int headerLength = 4 + 4 * rank;
        if (ReadFully(stream, header[..4]) < 4)
            throw new DataException($"{path} is too short to be an IDX {what} file (less than 4 bytes). {fix}");

        int actualMagic = BinaryPrimitives.ReadInt32BigEndian(header);
        if (actualMagic != magic)
            throw new DataException(
                $"{path} is not an IDX {what} file: its magic number is 0x{actualMagic:X8}, expected 0x{magic:X8} " +
                $"(unsigned bytes, {rank} dimension{(rank == 1 ? "" : "s")}){MagicHint(actualMagic)}. {fix}");

        if (ReadFully(stream, header[4..headerLength]) < headerLength - 4)
            throw new DataException($"{path} is truncated inside its IDX header. {fix}");
        var dims = new int[rank];
        for (int d = 0; d < rank; d++)
            dims[d] = BinaryPrimitives.ReadInt32BigEndian(header[(4 + 4 * d)..]);

        string shape = Describe(dims, what);
        if (dims.Any(d => d <= 0) || dims.Skip(1).Any(d => d > MaxSide))
            throw new DataException($"{path} has an implausible IDX header: it says {shape}. {fix}");
        long itemBytes = dims.Skip(1).Aggregate(1L, (a, d) => a * d);
        long dataBytes = dims[0] * itemBytes;
        long expected = headerLength + dataBytes;
        if (dataBytes > Array.MaxLength)
            throw new DataException($"{path} says {shape} ({expected} bytes), more than one array can hold. Use a smaller file. {fix}");

        if (fileLength is long length && length != expected)
            throw new DataException(length < expected
                ? $"{path} is truncated: header says {shape} ({expected} bytes) but the file has {length} bytes. {fix}"
                : $"{path} is too long: header says {shape} ({expected} bytes) but the file has {length} bytes. {fix}");

        int keep = (int)(Math.Min(keepItems ?? dims[0], dims[0]) * itemBytes);
        // A plain file's length was checked against the header above. A compressed one has no length to check first, and
        // a 100-byte gzip file may claim 2 GB: its buffer grows only as decompressed bytes actually arrive.
        var (data, read) = fileLength is null ? ReadGrowing(stream, keep) : ReadAll(stream, keep);
        long got = headerLength + read;
        if (got == headerLength + keep && fileLength is null)
        {
            // A compressed file has no length to compare with: decompress the rest to check that it is all there.
            got += Drain(stream, dataBytes - keep + 1);
        }
        if (fileLength is null && got != expected)
            throw new DataException(got < expected
                ? $"{path} is truncated: header says {shape} ({expected} bytes) but it decompresses to {got} bytes. {fix}"
                : $"{path} is too long: header says {shape} ({expected} bytes) but it decompresses to more. {fix}");
        if (got < headerLength + keep)
            throw new DataException($"{path} ended early while reading ({got} of {expected} bytes); was it changed while being read? {fix}");

        int total = dims[0];
        dims[0] = (int)(keep / itemBytes);
        return new Content(total, dims, data);
    }

    private static string MagicHint(int actual) =>
        actual is ImagesMagic or LabelsMagic
            ? "; it is the other kind of IDX file: are the images and labels paths swapped?"
            : (actual >>> 16) == 0 && ((actual >> 8) & 0xFF) != UnsignedByteType
                ? $"; its element type 0x{(actual >> 8) & 0xFF:X2} is not supported, only unsigned bytes (0x08) are"
                : "";

    private static string Describe(int[] dims, string what) => dims.Length switch
    {
        1 => $"{dims[0]} {what}",
        3 => $"{dims[0]} {what} of {dims[1]}x{dims[2]}",
        _ => $"{dims[0]} {what} of {string.Join('x', dims.Skip(1))}",
    };

    private static (byte[] Data, int Read) ReadAll(Stream stream, int length)
    {
        var data = GC.AllocateUninitializedArray<byte>(length);
        return (data, ReadFully(stream, data));
    }

    /// <summary>Up to <paramref name="length"/> bytes into a buffer that starts at 1 MiB and doubles while the stream fills it.</summary>
    private static (byte[] Data, int Read) ReadGrowing(Stream stream, int length)
    {
        var data = GC.AllocateUninitializedArray<byte>(Math.Min(length, 1 << 20));
        var read = ReadFully(stream, data);
        while (read == data.Length && read < length)
        {
            var grown = GC.AllocateUninitializedArray<byte>((int)Math.Min(length, 2L * data.Length));
            data.AsSpan(0, read).CopyTo(grown);
            data = grown;
            read += ReadFully(stream, data.AsSpan(read));
        }
        return (data, read);
    }

    private static int ReadFully(Stream stream, Span<byte> buffer)
    {
        int total = 0;
        while (total < buffer.Length)
        {
            int n = stream.Read(buffer[total..]);
            if (n == 0)
                break;
            total += n;
        }
        return total;
    }

    /// <summary>Reads and discards up to <paramref name="max"/> bytes; returns how many there were.</summary>
    private static long Drain(Stream stream, long max)
    {
        var buffer = new byte[1 << 16];
        long total = 0;
        while (total < max)
        {
            int n = stream.Read(buffer, 0, (int)Math.Min(buffer.Length, max - total));
            if (n == 0)
                break;
            total += n;
        }
        return total;
    }
}
