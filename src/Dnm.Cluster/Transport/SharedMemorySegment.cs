using System.Buffers.Binary;
using System.IO.MemoryMappedFiles;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Dnm.Cluster.Transport;

/// <summary>
/// One direction of a data-plane connection's shared-memory channel: a memory-mapped file (under /dev/shm)
/// holding one frame's payload at a time. The writer copies a payload in and then sends the frame's header
/// over TCP; the reader, having received that header, copies the payload out and then bumps the
/// <c>consumed</c> counter. A writer only writes when every frame it wrote has been consumed, so a payload is
/// never overwritten while the reader may still be copying it; when the previous one is still held the
/// frame goes over TCP instead (<see cref="TryWrite"/>), so nobody ever waits on the other process.
/// <code>
///   0 magic u32 "DNMS" | 4 layout version u32 | 8 capacity u64 | 16 nonce (16 bytes) | 32..63 zero
///  64 consumed i64 (written by the reader) | 72 written i64 (written by the writer) | 80..127 zero
/// 128 payload (capacity bytes)
/// </code>
/// Every access to the mapping holds a reference on its view handle, so disposing the connection while a
/// frame is being copied unmaps only after the copy (the copy itself fails the next frame, not the process).
/// </summary>
internal sealed unsafe class SharedMemorySegment : IDisposable
{
    /// <summary>Bytes in front of the payload.</summary>
    public const int ControlBytes = 128;

    public const int NonceBytes = 16;

    /// <summary>"DNMS" read as a little-endian u32.</summary>
    private const uint Magic = 0x534D_4E44;

    private const uint LayoutVersion = 1;
    private const int ConsumedOffset = 64;
    private const int WrittenOffset = 72;

    // The reader checksums each chunk right after copying it, while it is still in cache.
    private const int ChunkBytes = 256 * 1024;

    private readonly MemoryMappedFile _file;
    private readonly MemoryMappedViewAccessor _view;

    // Frames this side has written (writer) or read (reader); only this side's one sender or receiver touches it.
    private long _frames;

    private SharedMemorySegment(string path, int capacity, MemoryMappedFile file, MemoryMappedViewAccessor view)
    {
        Path = path;
        Capacity = capacity;
        _file = file;
        _view = view;
    }

    /// <summary>The file backing the mapping (unlinked soon after both sides mapped it).</summary>
    public string Path { get; }

    /// <summary>Payload bytes the segment holds.</summary>
    public int Capacity { get; }

    /// <summary>
    /// Creates the file (0600, never an existing one), reserves its memory and writes the control block.
    /// Throws IOException when the file cannot be created or the memory reserved (e.g. /dev/shm full).
    /// </summary>
    public static SharedMemorySegment Create(string path, int capacity, ReadOnlySpan<byte> nonce)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(capacity);
        if (nonce.Length != NonceBytes)
            throw new ArgumentException($"A nonce is {NonceBytes} bytes.", nameof(nonce));
        var length = ControlBytes + (long)capacity;
        // PreallocationSize reserves the pages (fallocate): a full tmpfs fails here, and the connection uses
        // TCP, instead of killing the process with SIGBUS on the first write into a sparse mapping.
        var options = new FileStreamOptions
        {
            Mode = FileMode.CreateNew,
            Access = FileAccess.ReadWrite,
            Share = FileShare.ReadWrite,
            PreallocationSize = length,
        };
        // Only this user may open the segment (the platform analyzer needs the guard as a statement).
        if (!OperatingSystem.IsWindows())
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        var stream = new FileStream(path, options);
        try
        {
            stream.SetLength(length);
            var segment = Map(path, capacity, stream);
            segment.WriteControl(capacity, nonce);
            return segment;
        }
        catch
        {
            stream.Dispose();
            File.Delete(path);
            throw;
        }
    }

    /// <summary>
    /// Opens a segment the peer created and checks that it is the one offered: magic, layout, capacity and
    /// nonce. Throws IOException (missing file: another host or IPC namespace) or InvalidDataException.
    /// </summary>
    public static SharedMemorySegment Open(string path, int capacity, ReadOnlySpan<byte> nonce)
    {
        var stream = new FileStream(path, FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite);
        try
        {
            if (stream.Length != ControlBytes + (long)capacity)
                throw new InvalidDataException($"{path} holds {stream.Length} bytes, not the {ControlBytes + (long)capacity} offered.");
            var segment = Map(path, capacity, stream);
            try
            {
                segment.CheckControl(capacity, nonce);
                return segment;
            }
            catch
            {
                segment.Dispose();
                throw;
            }
        }
        catch
        {
            stream.Dispose();
            throw;
        }
    }

    private static SharedMemorySegment Map(string path, int capacity, FileStream stream)
    {
        var file = MemoryMappedFile.CreateFromFile(stream, null, 0, MemoryMappedFileAccess.ReadWrite, HandleInheritability.None, leaveOpen: false);
        try
        {
            return new SharedMemorySegment(path, capacity, file, file.CreateViewAccessor(0, ControlBytes + (long)capacity, MemoryMappedFileAccess.ReadWrite));
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    private void WriteControl(int capacity, ReadOnlySpan<byte> nonce)
    {
        var base_ = Acquire();
        try
        {
            var control = new Span<byte>(base_, ControlBytes);
            control.Clear();
            BinaryPrimitives.WriteUInt32LittleEndian(control, Magic);
            BinaryPrimitives.WriteUInt32LittleEndian(control[4..], LayoutVersion);
            BinaryPrimitives.WriteInt64LittleEndian(control[8..], capacity);
            nonce.CopyTo(control.Slice(16, NonceBytes));
        }
        finally
        {
            Release();
        }
    }

    private void CheckControl(int capacity, ReadOnlySpan<byte> nonce)
    {
        var base_ = Acquire();
        try
        {
            var control = new ReadOnlySpan<byte>(base_, ControlBytes);
            if (BinaryPrimitives.ReadUInt32LittleEndian(control) != Magic || BinaryPrimitives.ReadUInt32LittleEndian(control[4..]) != LayoutVersion)
                throw new InvalidDataException($"{Path} is not a Dnm shared-memory segment of layout {LayoutVersion}.");
            if (BinaryPrimitives.ReadInt64LittleEndian(control[8..]) != capacity)
                throw new InvalidDataException($"{Path} holds {BinaryPrimitives.ReadInt64LittleEndian(control[8..])} payload bytes, not the {capacity} offered.");
            if (!control.Slice(16, NonceBytes).SequenceEqual(nonce))
                throw new InvalidDataException($"{Path} carries another nonce than the one offered: not the peer's segment.");
        }
        finally
        {
            Release();
        }
    }

    /// <summary>
    /// Copies <paramref name="payload"/> in, unless the reader has not yet consumed every frame written
    /// before (then false: the caller sends this frame over TCP). The caller then sends the header.
    /// </summary>
    public bool TryWrite(ReadOnlySpan<byte> payload)
    {
        if (payload.Length > Capacity)
            throw new ArgumentException($"The payload ({payload.Length} bytes) exceeds the segment ({Capacity} bytes).", nameof(payload));
        var base_ = Acquire();
        try
        {
            // Acquire read: the reader's copy of the previous payload happened before it published this count.
            if (Volatile.Read(ref Counter(base_, ConsumedOffset)) != _frames)
                return false;
            payload.CopyTo(new Span<byte>(base_ + ControlBytes, payload.Length));
            Volatile.Write(ref Counter(base_, WrittenOffset), ++_frames);
            return true;
        }
        finally
        {
            Release();
        }
    }

    /// <summary>
    /// Copies the next frame's payload into <paramref name="destination"/> (its length is the header's,
    /// already validated), marks it consumed and returns the CRC-32C of what landed in the destination.
    /// </summary>
    /// <exception cref="InvalidDataException">The writer has not written the frame this header announces.</exception>
    public uint Read(Span<byte> destination)
    {
        if (destination.Length > Capacity)
            throw new ArgumentException($"The payload ({destination.Length} bytes) exceeds the segment ({Capacity} bytes).", nameof(destination));
        var base_ = Acquire();
        try
        {
            var source = NextPayload(base_, destination.Length);
            uint crc = 0;
            for (var done = 0; done < source.Length; done += ChunkBytes)
            {
                var n = Math.Min(ChunkBytes, source.Length - done);
                var chunk = destination.Slice(done, n);
                source.Slice(done, n).CopyTo(chunk);
                crc = Crc32C.Append(crc, chunk);
            }
            Consumed(base_);
            return crc;
        }
        finally
        {
            Release();
        }
    }

    /// <summary>
    /// Adds the next frame's payload (floats) to <paramref name="sum"/>'s local vector where it lies, without copying it out first
    /// (<see cref="ReceivedSum"/>). Each chunk is checksummed right after it was added, while it is still in the cache. The writer
    /// writes the segment again only after <c>consumed</c> moves, so what is checksummed is what was added. Returns the CRC-32C of
    /// the payload.
    /// </summary>
    /// <exception cref="InvalidDataException">The writer has not written the frame this header announces.</exception>
    public uint ReadSum(ReceivedSum sum)
    {
        var bytes = sum.Destination.Length * sizeof(float);
        if (bytes > Capacity)
            throw new ArgumentException($"The payload ({bytes} bytes) exceeds the segment ({Capacity} bytes).", nameof(sum));
        var base_ = Acquire();
        try
        {
            // The payload starts ControlBytes (128) into the page-aligned mapping, so the floats are aligned.
            var received = MemoryMarshal.Cast<byte, float>(NextPayload(base_, bytes));
            const int chunkFloats = ChunkBytes / sizeof(float);
            uint crc = 0;
            for (var done = 0; done < received.Length; done += chunkFloats)
            {
                var chunk = received.Slice(done, Math.Min(chunkFloats, received.Length - done));
                sum.Add(chunk, done);
                crc = Crc32C.Append(crc, MemoryMarshal.AsBytes(chunk));
            }
            Consumed(base_);
            return crc;
        }
        finally
        {
            Release();
        }
    }

    /// <summary>The payload of the frame a header announced, once the writer has written it (the caller holds the mapping).</summary>
    private ReadOnlySpan<byte> NextPayload(byte* base_, int bytes)
    {
        var expected = _frames + 1;
        var written = Volatile.Read(ref Counter(base_, WrittenOffset));
        if (written != expected)
            throw new InvalidDataException($"the header announces shared-memory frame {expected}, but the segment holds frame {written}");
        return new ReadOnlySpan<byte>(base_ + ControlBytes, bytes);
    }

    /// <summary>
    /// Marks the frame read. A release write: every read of the payload is complete before the writer may see the segment free.
    /// </summary>
    private void Consumed(byte* base_) => Volatile.Write(ref Counter(base_, ConsumedOffset), ++_frames);

    /// <summary>The payload area, for tests that corrupt a frame in flight.</summary>
    internal void CorruptPayloadByte(int offset)
    {
        var base_ = Acquire();
        try
        {
            base_[ControlBytes + offset] ^= 0x10;
        }
        finally
        {
            Release();
        }
    }

    /// <summary>Removes the file name; the mappings of both sides stay valid. Never throws.</summary>
    public void Unlink()
    {
        try
        {
            File.Delete(Path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // Nothing left to do: the name may already be gone (the peer unlinked it first).
        }
    }

    private static ref long Counter(byte* base_, int offset) => ref Unsafe.AsRef<long>(base_ + offset);

    // The handle's reference count keeps the view mapped until Release, even if Dispose runs meanwhile;
    // after Dispose, Acquire throws ObjectDisposedException.
    private byte* Acquire()
    {
        byte* pointer = null;
        _view.SafeMemoryMappedViewHandle.AcquirePointer(ref pointer);
        return pointer + _view.PointerOffset;
    }

    private void Release() => _view.SafeMemoryMappedViewHandle.ReleasePointer();

    public void Dispose()
    {
        _view.Dispose();
        _file.Dispose();
    }
}
