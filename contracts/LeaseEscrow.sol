// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

import "./Operated.sol";
import "./TokenTransfer.sol";
import "./RewardPoints.sol";

/// @title LeaseEscrow
/// @notice Holds renters' ERC-20 deposits for leases until OneNode's operator settles them.
/// One storage slot per (lease, depositor) record, O(1) gas per lease.
///
/// Records are keyed by lease id and depositor, so nobody can open, fund or block another
/// wallet's record: a stranger's deposit under the same lease id is a record of its own,
/// which OneNode ignores (it counts only the lease's renter). A record is locked until the
/// time its depositor chose (OneNode's quote asks for the lease's end plus a settlement
/// margin); after that, an unsettled record goes back to its depositor with `reclaim`, which
/// the depositor sends and pays for. The operator never pays gas for someone else's deposit.
///
/// Settlement: the operator names the renter whose record it settles, the provider's payout
/// wallet, the amount paid to it and the refund; toProvider + refundToRenter must not exceed
/// the record, and whatever remains also goes back to the renter (so the renter receives
/// amount - toProvider). A record is settled or reclaimed at most once and is closed after.
contract LeaseEscrow is Operated {
    using TokenTransfer for IERC20;

    error ZeroAmount();
    error RecordClosed();
    error NoRecord();
    error Locked(uint64 until);
    error AmountTooLarge();
    error SettleExceedsDeposit();
    error NoPoints();

    /// First deposit into the depositor's record for this lease.
    event Deposited(bytes32 indexed leaseId, address indexed renter, uint256 amount, uint256 lockedUntil);
    /// A later deposit into the same record: `total` is what the record holds now.
    event ToppedUp(bytes32 indexed leaseId, address indexed renter, uint256 amount, uint256 total, uint256 lockedUntil);
    event Reclaimed(bytes32 indexed leaseId, address indexed renter, uint256 amount);
    event Settled(
        bytes32 indexed leaseId,
        address indexed provider,
        address indexed renter,
        uint256 toProvider,
        uint256 toRenter,
        uint256 creditPoints
    );
    event PointsUsed(bytes32 indexed leaseId, address indexed renter, uint256 points);

    uint8 internal constant OPEN = 1;
    uint8 internal constant SETTLED = 2;
    uint8 internal constant RECLAIMED = 3;

    struct Record {
        uint88 amount; // deposited and not yet paid out (max ~3.09e26 base units)
        uint8 state; // 0 none, 1 open, 2 settled, 3 reclaimed
        uint64 lockedUntil; // unix seconds; reclaimable by the depositor from then on
    }

    IERC20 public immutable token;
    RewardPoints public immutable points; // may be address(0): then creditPoints must be 0

    mapping(bytes32 => mapping(address => Record)) private _records;

    constructor(IERC20 token_, RewardPoints points_) {
        if (address(token_) == address(0)) revert ZeroAddress();
        token = token_;
        points = points_;
    }

    function recordOf(bytes32 leaseId, address depositor)
        external
        view
        returns (uint256 amount, uint8 state, uint64 lockedUntil)
    {
        Record memory r = _records[leaseId][depositor];
        return (r.amount, r.state, r.lockedUntil);
    }

    /// @notice Adds `amount` tokens (approve first) to the caller's record for `leaseId`,
    /// opening it if needed, and locks the record until at least `lockedUntil` (a lock only
    /// grows). Deposits and top-ups of one record count together.
    /// @dev No reentrancy guard (saves gas on the hot path): the record is written before the
    /// only external call, to the immutable token.
    function deposit(bytes32 leaseId, uint256 amount, uint64 lockedUntil) external {
        if (amount == 0) revert ZeroAmount();
        Record memory r = _records[leaseId][msg.sender];
        if (r.state > OPEN) revert RecordClosed();
        uint256 total = uint256(r.amount) + amount;
        if (total > type(uint88).max) revert AmountTooLarge();
        uint64 lock = lockedUntil > r.lockedUntil ? lockedUntil : r.lockedUntil;
        _records[leaseId][msg.sender] = Record(uint88(total), OPEN, lock);
        token.pull(msg.sender, address(this), amount);
        if (r.state == 0) emit Deposited(leaseId, msg.sender, amount, lock);
        else emit ToppedUp(leaseId, msg.sender, amount, total, lock);
    }

    /// @notice Gives the caller's unsettled record for `leaseId` back to the caller, once its
    /// lock has passed. Strays, dust and deposits for leases that were never paid in full end
    /// here, at the depositor's cost.
    function reclaim(bytes32 leaseId) external {
        Record storage r = _records[leaseId][msg.sender];
        if (r.state != OPEN) revert NoRecord();
        if (block.timestamp < r.lockedUntil) revert Locked(r.lockedUntil);
        uint256 amount = r.amount;
        r.amount = 0;
        r.state = RECLAIMED;
        token.send(msg.sender, amount);
        emit Reclaimed(leaseId, msg.sender, amount);
    }

    /// @notice Renter burns reward points against its open record; OneNode applies the
    /// discount in the split it settles with. Requires this escrow to be a points spender.
    function usePoints(bytes32 leaseId, uint256 amount) external nonReentrant {
        if (amount == 0) revert ZeroAmount();
        if (address(points) == address(0)) revert NoPoints();
        if (_records[leaseId][msg.sender].state != OPEN) revert NoRecord();
        points.spend(msg.sender, amount);
        emit PointsUsed(leaseId, msg.sender, amount);
    }

    /// @notice Pays out `renter`'s record for `leaseId` once: `toProvider` to `provider`, the
    /// rest of the record (refundToRenter plus any remainder) to the renter; mints
    /// `creditPoints` reward points to the renter.
    function settle(
        bytes32 leaseId,
        address renter,
        address provider,
        uint256 toProvider,
        uint256 refundToRenter,
        uint256 creditPoints
    ) external onlyOperator {
        // No reentrancy guard: only the operator can enter, and the record is closed before
        // any external call.
        Record storage r = _records[leaseId][renter];
        if (r.state != OPEN) revert NoRecord();
        uint256 deposited = r.amount;
        if (toProvider > deposited || refundToRenter > deposited - toProvider) revert SettleExceedsDeposit();
        if (toProvider != 0 && provider == address(0)) revert ZeroAddress();
        r.amount = 0;
        r.state = SETTLED;
        uint256 toRenter;
        unchecked {
            toRenter = deposited - toProvider;
        }
        if (toProvider != 0) token.send(provider, toProvider);
        if (toRenter != 0) token.send(renter, toRenter);
        if (creditPoints != 0) {
            if (address(points) == address(0)) revert NoPoints();
            points.mint(renter, creditPoints);
        }
        emit Settled(leaseId, provider, renter, toProvider, toRenter, creditPoints);
    }
}
